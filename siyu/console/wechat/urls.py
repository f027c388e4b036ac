"""The console's WeChat pages. Names live in the ``console`` namespace (e.g. ``console:wechat_apps``)."""

from siyu.console.wechat import consumer, core, official, pay, work

urlpatterns = [*core.urlpatterns, *official.urlpatterns, *consumer.urlpatterns, *work.urlpatterns,
               *pay.urlpatterns]
