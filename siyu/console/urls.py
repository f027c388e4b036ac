from django.contrib.auth import views as auth_views
from django.urls import include, path

from siyu.console import customer_views, tag_views, views

app_name = "console"
urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("workspace/switch/", views.workspace_switch, name="workspace_switch"),
    path("soon/<slug:key>/", views.not_built, name="not_built"),
    path("customers/", customer_views.customer_list, name="customer_list"),
    path("customers/<int:customer_id>/", customer_views.customer_detail, name="customer_detail"),
    path("customers/<int:customer_id>/tags/add/", customer_views.customer_tag_add, name="customer_tag_add"),
    path("customers/<int:customer_id>/tags/remove/", customer_views.customer_tag_remove, name="customer_tag_remove"),
    path("customers/<int:customer_id>/unmerge/", customer_views.customer_unmerge_view, name="customer_unmerge"),
    path("customers/<int:customer_id>/link/", customer_views.customer_link_view, name="customer_link"),
    path("tags/", tag_views.tags_page, name="tags"),
    path("tags/groups/", tag_views.tag_group_create, name="tag_group_create"),
    path("tags/new/", tag_views.tag_create, name="tag_create"),
    path("tags/bulk/", tag_views.tags_bulk_apply, name="tags_bulk_apply"),
    path("wechat/", include("siyu.console.wechat.urls")),
    path("commerce/", include("siyu.console.commerce.urls")),
    path("ops/", include("siyu.console.engagement.urls")),
]
