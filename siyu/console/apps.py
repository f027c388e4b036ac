from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "siyu.console"
    label = "console"
    verbose_name = "控制台 Console"
