"""Chinese first: a visitor sees Chinese until they choose English with the language switch.

Django's LocaleMiddleware would follow the browser's Accept-Language, so an English-language browser
would open the console in English; the product is Chinese-first, so only the language cookie set by
``/i18n/setlang/`` (or an explicit ``?lang=`` never used here) changes the language.
"""

from __future__ import annotations

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class ChineseFirstLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request):
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _name in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
