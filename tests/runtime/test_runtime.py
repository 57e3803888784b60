import asyncio

from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.runtime.sim import SimRuntime


def test_sim_orders_by_time_then_schedule_order():
    rt = SimRuntime()
    out = []
    rt.call_later(2.0, out.append, "c")
    rt.call_later(1.0, out.append, "a")
    rt.call_later(1.0, out.append, "b")
    rt.run()
    assert out == ["a", "b", "c"] and rt.now() == 2.0


def test_sim_cancel_and_until():
    rt = SimRuntime()
    out = []
    t = rt.call_later(1.0, out.append, 1)
    rt.call_later(5.0, out.append, 5)
    t.cancel()
    rt.run(until=3.0)
    assert out == [] and rt.now() == 3.0
    rt.run()
    assert out == [5]


def test_sim_is_deterministic_for_a_seed():
    def trace(seed):
        rt = SimRuntime(seed=seed)
        out = []

        def tick(n):
            out.append((rt.now(), rt.rng.random()))
            if n:
                rt.call_later(rt.rng.expovariate(10), tick, n - 1)

        rt.call_soon(tick, 100)
        rt.run()
        return out

    assert trace(7) == trace(7)
    assert trace(7) != trace(8)


def test_sim_timers_scheduled_in_the_past_run_now():
    rt = SimRuntime(start=10.0)
    out = []
    rt.call_at(5.0, lambda: out.append(rt.now()))
    rt.run()
    assert out == [10.0]


def test_asyncio_runtime_timers():
    async def main(rt: AsyncioRuntime):
        fut = asyncio.get_running_loop().create_future()
        t0 = rt.now()
        cancelled = rt.call_later(0.01, fut.set_result, "wrong")
        cancelled.cancel()
        rt.call_later(0.02, fut.set_result, "ok")
        res = await fut
        return res, rt.now() - t0

    res, dt = run(main)
    assert res == "ok" and dt >= 0.015


def test_realtime_timers_never_fire_early():
    """uvloop truncates to whole ms; the runtime re-arms so deadlines are honoured."""
    import time

    async def main(rt: AsyncioRuntime):
        errors = []
        for delay in (0.0005, 0.0013, 0.0029):
            fut = asyncio.get_running_loop().create_future()
            t0 = time.monotonic()
            rt.call_later(delay, lambda f=fut: f.set_result(time.monotonic()))
            errors.append(await fut - t0 - delay)
        return errors

    assert min(run(main)) >= -50e-6
