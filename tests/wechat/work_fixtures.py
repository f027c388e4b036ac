"""Shared set-up for the 企业微信 tests: a corp registered in the simulator and in Siyu, with members."""

from __future__ import annotations

import pytest
from huey.contrib.djhuey import HUEY

from siyu.wechat.work.contacts import staff_sync
from siyu.wechat.work.models import Staff
from siyu.wechat_sim import work as sim_work

STAFF = {"zhangsan": "张三", "lisi": "李四", "wangwu": "王五"}


@pytest.fixture
def immediate_tasks():
    previous = HUEY.immediate
    HUEY.immediate = True  # tasks run in-process: the test follows them to the simulator and back
    yield HUEY
    HUEY.immediate = previous


@pytest.fixture
def corp(wechat_sim, work_app, immediate_tasks):
    """The WeCom app with three members known on both sides."""
    for userid, name in STAFF.items():
        sim_work.staff_add(wechat_sim, work_app.appid, userid, name)
    staff_sync(work_app)
    return work_app


@pytest.fixture
def staff(corp):
    return {row.userid: row for row in Staff.objects.filter(app=corp)}


def sim_corp(sim, app):
    return sim_work.work_state(sim).corp(app.appid)
