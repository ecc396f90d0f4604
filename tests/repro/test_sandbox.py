"""Adversarial snippets: each attempt is contained, recorded with the right verdict, and the host is unchanged.

Every test runs in both modes: a warm sandbox (frameworks imported once, a forked child per
snippet) and a cold one (a fresh sandboxed interpreter per snippet).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from issuemine.repro.sandbox import Limits
from tests.repro.conftest import Harness, make_harness

LIMITS = Limits(timeout=20, memory_mb=4096, processes=64, file_size_mb=32, tmp_size_mb=256)
README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "ghp_issuemineTestToken0123456789abcdef"


@pytest.fixture(scope="module", params=["warm", "cold"])
def box(request: pytest.FixtureRequest) -> Iterator[Harness]:
    os.environ["GITHUB_TOKEN"] = TOKEN  # the host has a token: the sandbox must never see it
    os.environ["AWS_SECRET_ACCESS_KEY"] = TOKEN
    try:
        yield from make_harness(request.param == "warm", LIMITS, slot=2)
    finally:
        os.environ.pop("GITHUB_TOKEN", None)
        os.environ.pop("AWS_SECRET_ACCESS_KEY", None)


def sandbox_processes(settle: float = 5.0) -> list[str]:
    """Processes of the sandbox's uid still alive on the host (as root), or any `sleep 4242`,
    once the kernel has had ``settle`` seconds to tear down a namespace."""
    deadline = time.monotonic() + settle
    while True:
        found = _sandbox_processes()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _sandbox_processes() -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "sleep 4242" in cmdline or (os.geteuid() == 0 and uid == 64002 and "zygote.py" not in cmdline):
            found.append(f"{pid} {cmdline}")
    return found


def assert_violation(box: Harness, script: str, kind: str) -> str:
    outcome = box.run(script)
    assert outcome.verdict.verdict == "sandbox-violation", outcome.verdict
    assert outcome.verdict.evidence["violation"] == kind, outcome.verdict
    assert TOKEN not in str(outcome.result)
    return str(outcome.result.get("tail", ""))


def test_public_network_is_unreachable(box: Harness) -> None:
    script = (
        "import socket\n"
        "for address in [('93.184.216.34', 80), ('1.1.1.1', 443)]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=3)\n"
        "        print('CONNECTED', address)\n"
        "    except OSError as exc:\n"
        "        print('blocked', exc)\n"
    )
    tail = assert_violation(box, script, "network")
    assert "CONNECTED" not in tail and "blocked" in tail


def test_host_loopback_services_are_unreachable(box: Harness) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not accepted:
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    script = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "    print('CONNECTED')\n"
        "except OSError as exc:\n"
        "    print('blocked', exc)\n"
    )
    try:
        tail = assert_violation(box, script, "network")
    finally:
        thread.join()
        server.close()
    assert "CONNECTED" not in tail and not accepted


def test_secret_files_are_not_there(box: Harness) -> None:
    paths = "['/etc/shadow', os.path.expanduser('~/.ssh/id_rsa'), '/root/.ssh/id_rsa', '/root/.bash_history']"
    script = (
        "import os\n"
        f"for path in {paths}:\n"
        "    try:\n"
        "        print('READ', path, open(path).read()[:50])\n"
        "    except OSError as exc:\n"
        "        print('denied', path, exc.strerror)\n"
        f"print('home', os.environ.get('HOME'), os.path.exists('/home'), os.path.exists({str(README)!r}))\n"
    )
    tail = assert_violation(box, script, "secret-file")
    assert "READ" not in tail
    shadow = Path("/etc/shadow")
    if shadow.exists() and os.access(shadow, os.R_OK):
        assert shadow.read_text().splitlines()[0] not in tail
    if box.runner.kind == "bwrap":
        # no home directories, no project checkout; HOME is in the run's own fresh directory
        assert re.search(r"home /tmp/run\d+/home False False", tail), tail


def test_token_is_stripped_from_the_environment(box: Harness) -> None:
    script = (
        "import os\n"
        "print('token', os.environ.get('GITHUB_TOKEN'))\n"
        "print(sorted(os.environ))\n"
        "print(open('/proc/self/environ', 'rb').read())\n"
        "try:\n"
        "    print(open('/proc/1/environ', 'rb').read())\n"
        "except OSError as exc:\n"
        "    print('pid1', exc.strerror)\n"
    )
    tail = assert_violation(box, script, "credential")
    assert "token None" in tail and TOKEN not in tail and "AWS_SECRET" not in tail


def test_writes_outside_the_temp_dir_fail_and_change_nothing(box: Harness, tmp_path: Path) -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    targets = [site / "issuemine_pwned.py", Path(sys.prefix) / "pwned.txt", Path("/usr/local/pwned.txt")]
    script = "for path in %r:\n" % [str(t) for t in targets] + (
        "    try:\n"
        "        open(path, 'w').write('pwned')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print('denied', path, exc.strerror)\n"
        "open('inside.txt', 'w').write('fine')\n"
    )
    before = sorted(os.listdir(site))
    tail = assert_violation(box, script, "write-outside")
    assert "WROTE" not in tail
    assert not any(t.exists() for t in targets)
    assert sorted(os.listdir(site)) == before


def test_fork_bomb_hits_the_process_limit(box: Harness) -> None:
    if os.geteuid() != 0 and box.runner.kind != "bwrap":
        pytest.skip("the unshare fallback shares the host user's process count")
    script = "import os\nwhile True:\n    os.fork()\n"
    outcome = box.run(script)
    assert outcome.verdict.verdict in ("sandbox-violation", "hang"), outcome.verdict
    if outcome.verdict.verdict == "sandbox-violation":
        assert outcome.verdict.evidence["violation"] in ("processes", "orphans")
    assert sandbox_processes() == []
    assert box.run("print('still alive')").result["tail"].strip() == "still alive"


def test_huge_allocation_hits_the_memory_limit(box: Harness) -> None:
    outcome = box.run("buffer = bytearray(50 * 1024**3)\nprint('ALLOCATED')\n")
    assert outcome.verdict.verdict == "sandbox-violation" and outcome.verdict.evidence["violation"] == "memory"
    assert "ALLOCATED" not in outcome.result["tail"]


def test_forked_children_are_stopped_at_the_snippets_memory_limit_together(box: Harness) -> None:
    """Three children that each stay under the per-process limit but together hold more than the
    snippet's allowance (LIMITS: 4 GB): the sandbox's control group stops them, where the machine
    lets issuemine make one; the run record says which limits applied."""
    if not str(box.zygote.info.get("limits", "")).startswith("cgroup"):
        pytest.skip(f"no control group here: {box.zygote.info.get('limits')}")
    script = (
        "import os, time\n"
        "children = []\n"
        "for _ in range(3):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = bytearray(b'\\x01') * (1700 * 1024**2)  # written, so really held\n"
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "print('exits', sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in children))\n"
    )
    outcome = box.run(script)
    assert outcome.verdict.verdict == "sandbox-violation", outcome.verdict
    assert outcome.verdict.evidence["violation"] == "memory", outcome.verdict
    assert "together exceeded the memory limit" in (outcome.verdict.reason or "")
    # One was killed (-9); the run did not wait out the others' sleep as if all were fine.
    assert "-9" in outcome.result["tail"], outcome.result["tail"]


def test_endless_loop_is_a_hang(box: Harness) -> None:
    outcome = box.run("while True:\n    pass\n", timeout=3)
    assert outcome.verdict.verdict == "hang" and outcome.verdict.stage is None
    assert outcome.result["timed_out"] and outcome.result["duration"] < 10


def test_child_left_behind_is_killed(box: Harness) -> None:
    script = "import subprocess\nsubprocess.Popen(['sleep', '4242'], start_new_session=True)\nprint('left it')\n"
    outcome = box.run(script)
    assert outcome.verdict.verdict == "sandbox-violation" and outcome.verdict.evidence["violation"] == "orphans"
    assert sandbox_processes() == []


def test_gigabyte_of_output_hits_the_output_limit(box: Harness) -> None:
    script = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\nprint('DONE')\n"
    outcome = box.run(script)
    assert outcome.verdict.verdict == "sandbox-violation" and outcome.verdict.evidence["violation"] == "output"
    limit = LIMITS.file_size_mb * 1024 * 1024
    assert limit < outcome.result["output_bytes"] <= limit + (2 << 20)  # read up to the limit, then killed
    assert len(outcome.result["tail"]) < 300_000 and "DONE" not in outcome.result["tail"]


def test_a_huge_file_hits_the_file_size_limit(box: Harness) -> None:
    script = (
        "chunk = b'x' * (1 << 20)\n"
        "with open('big.bin', 'wb') as f:\n"
        "    for _ in range(1024):\n"
        "        f.write(chunk)\n"
    )
    outcome = box.run(script)
    assert outcome.verdict.verdict == "sandbox-violation" and outcome.verdict.evidence["violation"] == "file-size"


def test_next_run_sees_nothing_of_the_previous_one(box: Harness) -> None:
    if box.runner.kind != "bwrap":
        pytest.skip("only bwrap gives each sandbox its own /tmp and /dev/shm")
    box.run("for p in ['/tmp/left-over', 'here.txt', '/dev/shm/left-over']:\n    open(p, 'w').write('x')\n")
    outcome = box.run(
        "import os\nprint([os.path.exists(p) for p in ['/tmp/left-over', 'here.txt', '/dev/shm/left-over']])\n"
    )
    assert outcome.result["tail"].strip() == "[False, False, False]"


def test_vsock_namespaces_and_ptrace_are_refused_and_recorded(box: Harness) -> None:
    if box.runner.kind != "bwrap" or not box.zygote.info.get("syscall_filter"):
        pytest.skip("the system-call filter comes with bwrap and libseccomp")
    vsock = (
        "import socket\n"
        "sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)\n"
        "sock.bind((socket.VMADDR_CID_ANY, 5000))\n"
        "print('BOUND')\n"
    )
    outcome = box.run(vsock)
    assert outcome.verdict.evidence.get("violation") == "syscall", outcome.verdict
    assert "AF_VSOCK" in (outcome.verdict.reason or "")
    assert "BOUND" not in outcome.result["tail"] and "PermissionError" in outcome.result["tail"]
    # Caught quietly, through ctypes: still refused, still recorded.
    quiet = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "CLONE_NEWUSER, PTRACE_ATTACH = 0x10000000, 16\n"
        "print('unshare', libc.unshare(CLONE_NEWUSER), ctypes.get_errno())\n"
        "print('ptrace', libc.ptrace(PTRACE_ATTACH, os.getppid(), 0, 0), ctypes.get_errno())\n"
        "print('raw', end=' ')\n"
        "import socket\n"
        "try:\n"
        "    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    outcome = box.run(quiet)
    tail = outcome.result["tail"]
    assert "unshare -1 1" in tail and "ptrace -1 1" in tail and "raw 1" in tail, tail
    details = " ".join(str(v.get("detail")) for v in outcome.verdict.evidence["violations"])
    assert "unshare" in details and "ptrace" in details and "AF_PACKET" in details, details


def test_require_sandbox_refuses_the_fallback() -> None:
    from issuemine.errors import IssuemineError
    from issuemine.repro.sandbox import choose

    with pytest.raises(IssuemineError, match="require-sandbox"):
        choose("unshare", require_sandbox=True)


def test_unshare_fallback_still_blocks_the_network_and_says_so() -> None:
    from issuemine.repro.sandbox import unshare_works

    if not unshare_works():
        pytest.skip("unshare cannot create namespaces here")
    for harness in make_harness(True, LIMITS, slot=3, sandbox="unshare"):
        outcome = harness.run("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n")
        assert outcome.verdict.verdict == "sandbox-violation"
        assert outcome.result["sandbox"] == "unshare" and "weaker" in outcome.result["isolation"]
        assert "Network is unreachable" in outcome.result["tail"]


def test_ordinary_python_is_not_a_violation(box: Harness) -> None:
    """Worker pools, Unix socket pairs, temp files, writing to /dev/stderr: none of it is forbidden."""
    script = (
        "import multiprocessing, socket, sys, tempfile\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "with multiprocessing.get_context('fork').Pool(2) as pool:\n"
        "    print(pool.map(double, [1, 2, 3]))\n"
        "a, b = socket.socketpair()\n"
        "a.sendall(b'ok')\n"
        "print(b.recv(2))\n"
        "with tempfile.NamedTemporaryFile('w') as handle:\n"
        "    handle.write('x')\n"
        "open('/dev/stderr', 'w').write('to stderr\\n')\n"
    )
    outcome = box.run(script)
    assert outcome.verdict.verdict == "not-runnable", outcome.verdict  # fine, but it never calls a converter
    assert outcome.verdict.reason == "the script never called a converter"
    assert "[2, 4, 6]" in outcome.result["tail"] and "b'ok'" in outcome.result["tail"]
