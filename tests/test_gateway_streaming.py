"""Bodies stream through the gateway: a 200 MB upload and a 200 MB download keep the
process's peak RSS flat (growth < 50 MB), measured on Linux's VmHWM."""

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from workbook.gateway.demo import DemoStack

MB = 1024 * 1024
SIZE = 200 * MB


def _status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                                                   reason="needs Linux /proc to measure peak RSS")]


def test_a_200_mb_upload_and_download_keep_memory_flat():
    block = b"z" * (256 * 1024)

    async def body():
        sent = 0
        while sent < SIZE:
            yield block
            sent += len(block)

    async def main():
        stack = await DemoStack.start()
        try:
            async with aiohttp.ClientSession() as client:
                # warm up: connection pools, imports, first-request allocations
                async with client.post(stack.gateway_url + "/echo/sink", data=b"w" * MB) as r:
                    assert (await r.json())["bytes"] == MB
                _reset_peak()
                base = _status_kb("VmRSS")
                t0 = time.perf_counter()
                async with client.post(stack.gateway_url + "/echo/sink", data=body(),
                                       headers={"Content-Length": str(SIZE)}) as r:
                    assert r.status == 200
                    assert (await r.json())["bytes"] == SIZE
                upload = time.perf_counter() - t0, _status_kb("VmHWM") - base
                _reset_peak()
                base = _status_kb("VmRSS")
                t0 = time.perf_counter()
                received = 0
                async with client.get(stack.gateway_url + f"/echo/source?bytes={SIZE}") as r:
                    assert r.status == 200 and int(r.headers["Content-Length"]) == SIZE
                    async for chunk in r.content.iter_chunked(256 * 1024):
                        received += len(chunk)
                assert received == SIZE
                download = time.perf_counter() - t0, _status_kb("VmHWM") - base
                log = stack.gateway.access_log.records()
                return upload, download, log
        finally:
            await stack.stop()

    upload, download, log = asyncio.run(asyncio.wait_for(main(), 120))
    print(f"upload 200 MB: {upload[0]:.2f} s, peak RSS growth {upload[1] / 1024:.1f} MB; "
          f"download 200 MB: {download[0]:.2f} s, peak RSS growth {download[1] / 1024:.1f} MB")
    assert upload[1] < 50 * 1024 and download[1] < 50 * 1024
    assert log[-2]["bytes_in"] == SIZE and log[-1]["bytes_out"] == SIZE


def test_the_measurement_sees_a_buffered_body():
    """Control: holding 100 MB (what the article's ``await request.read()`` does) shows up."""
    _reset_peak()
    base = _status_kb("VmRSS")
    held = bytearray(100 * MB)
    held[::4096] = b"x" * len(held[::4096])     # touch every page
    growth = _status_kb("VmHWM") - base
    del held
    assert growth > 90 * 1024
