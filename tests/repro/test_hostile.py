"""Hostile snippets cannot spoil their neighbours' verdicts, forge events or stop the run server.

Each attack runs in the real warm sandbox, followed in the same server by an honest snippet whose
verdict must be the one it gets alone."""

from __future__ import annotations

import textwrap

import pytest

from tests.repro.conftest import SNIPPETS, Harness

HONEST = "import sys\nprint('honest', sys.argv[0])\n"


def script(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def alone(warm: Harness) -> tuple[str, str | None]:
    outcome = warm.run(HONEST)
    return outcome.verdict.verdict, outcome.verdict.reason


def test_a_read_only_mess_is_the_snippets_violation_and_the_next_run_starts_clean(warm: Harness) -> None:
    expected = alone(warm)
    attack = script(
        """
        import os
        os.makedirs("trap/deeper", exist_ok=True)
        with open("trap/deeper/kept", "w") as handle:
            handle.write("x")
        os.makedirs("tf2onnx", exist_ok=True)
        with open("tf2onnx/__init__.py", "w") as handle:
            handle.write("raise SystemExit('planted')\\n")
        for path in ("trap/deeper", "trap", "tf2onnx", "."):
            os.chmod(path, 0o555)
        print("run in", os.getcwd())
        """
    )
    outcome = warm.run(attack)
    first_dir = outcome.result["tail"].split("run in ")[-1].strip()
    after = warm.run(HONEST + "import os\nprint('cwd', os.getcwd(), os.listdir('.'))\n")
    assert (after.verdict.verdict, after.verdict.reason) == expected
    assert first_dir not in after.result["tail"] and "trap" not in after.result["tail"]
    # Its events are its own: one start and one exit, none of the previous snippet's.
    assert [e["event"] for e in after.result["events"]] == ["start", "exit"]
    planted = warm.run("import tf2onnx, sys\nprint(tf2onnx.__file__)\n")
    assert "site-packages" in planted.result["tail"]


SEND = """
import os, socket
def send(data):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\\0" + os.environ["ISSUEMINE_EVENTS"][1:])
    sock.sendall(data)
    sock.close()
"""


def test_forged_flooded_and_malformed_events_are_a_violation_not_a_server_failure(warm: Harness) -> None:
    expected = alone(warm)
    deep = SEND + script(
        """
        send(("[" * 100000 + "]" * 100000 + "\\n").encode())
        send(('{"event": "convert", "status": "ok", "seconds": ' + "9" * 400 + "}\\n").encode())
        """
    )
    outcome = warm.run(deep)
    assert outcome.verdict.verdict == "sandbox-violation", outcome.verdict.reason
    assert outcome.verdict.evidence["violation"] == "events"
    flood = SEND + script(
        """
        import json
        send(b"".join((json.dumps({"event": "violation", "kind": "noise", "detail": str(i)}) + "\\n").encode()
                      for i in range(20000)))
        send(b"x" * (9 * 1024 * 1024))
        """
    )
    flooded = warm.run(flood)
    assert flooded.verdict.verdict == "sandbox-violation"
    assert any(v.get("kind") == "events" for v in flooded.verdict.evidence["violations"])
    assert not flooded.result.get("timed_out")
    assert alone(warm) == expected  # the server is still serving, honestly


CRASHES = """
import torch
class Model(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.eigvals(x)
"""


@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_forged_events_and_a_patched_onnxruntime_leave_the_true_verdict(
    mode: str, warm: Harness, cold: Harness
) -> None:
    box = warm if mode == "warm" else cold
    pretend = SEND + script(
        """
        import json
        ok = {"event": "convert", "api": "torch.onnx.export", "status": "ok", "ort": {"status": "loaded"},
              "compare": [{"output": 0, "max_abs": 0.0, "within": {"abs-1e-7": True, "study": True}}]}
        """
    )
    # A conversion that crashes, then events that say it passed (the shim's own crash event is
    # already with the run server: it cannot be taken back).
    crash = box.run(
        pretend
        + CRASHES
        + script(
            """
            try:
                torch.onnx.export(Model(), (torch.randn(3, 3),), "m.onnx", dynamo=False)
            except Exception:
                send((json.dumps(ok) + "\\n").encode())
            """
        )
    )
    assert crash.verdict.verdict == "crash", crash.verdict
    # A wrong model (a symbolic that emits Sigmoid for ReLU), with ONNX Runtime patched in the
    # snippet's process to answer what the framework says, and a forged comparison on top.
    wrong = (SNIPPETS / "e_wrong_model.py").read_text()
    patched = box.run(
        pretend
        + script(
            """
            import onnxruntime
            real_run = onnxruntime.InferenceSession.run
            def run(self, names, feeds, *rest):
                import numpy, torch
                x = torch.from_numpy(next(iter(feeds.values())))
                return [model(x).detach().numpy()]
            onnxruntime.InferenceSession.run = run
            """
        )
        + wrong
        + "send((json.dumps(ok) + '\\n').encode())\n"
    )
    assert patched.verdict.verdict == "wrong-model", patched.verdict
    # And an honest run of the same snippet says the same.
    assert box.run(wrong).verdict.verdict == "wrong-model"


def test_escape_sequences_in_snippet_output_never_reach_the_terminal(tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    from issuemine.cli.app import app

    snippet = tmp_path / "loud.py"
    snippet.write_text(
        "import sys\n"
        "sys.stdout.write('\\x1b[2J\\x1b]0;pwned\\x07\\x1b]52;c;ZWNobyBoaQ==\\x07\\rhidden\\n')\n"
        "raise SystemExit('\\x1b[31mred\\x1b[0m')\n"
    )
    result = cli.invoke(app, ["repro", "file", str(snippet), "--cold"])
    assert "\x1b" not in result.output and "\x07" not in result.output and "\r" not in result.output
    assert "\\x1b[2J" in result.output and "\\x1b]52;c;" in result.output


def test_errors_print_user_data_as_text_not_markup(tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    from issuemine.cli.app import app

    for name in ("ratings[v2].csv", "ratings[/x].csv", "ratings[bold]red.csv"):
        result = cli.invoke(
            app, ["labels", "import", str(tmp_path / name), "--rater", "r", "--db", str(tmp_path / "x.db")]
        )
        assert result.exit_code != 0 and name in result.output, result.output
        assert "Traceback" not in result.output and "MarkupError" not in result.output


def test_label_without_a_terminal_refuses_before_training_anything(cli, label_db, db_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from issuemine.cli.app import app

    result = cli.invoke(app, ["label", "--sample", "s", "--rater", "ana", "--db", str(db_path)])
    assert result.exit_code == 2 and "needs a terminal" in result.output
    with label_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM suggest_models")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM raters WHERE name = 'ana'")).scalar() == 0


LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
# keyctl(2) and add_key(2) on x86_64 and aarch64: the test's own snippets call them directly.
KEYS = LIBC + script(
    """
    ADD_KEY, KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[os.uname().machine]
    def add(description, keyring):
        return libc.syscall(ADD_KEY, b"user", description, b"secret", 6, ctypes.c_long(keyring))
    def search(description, keyring):  # KEYCTL_SEARCH = 10
        return libc.syscall(KEYCTL, 10, ctypes.c_long(keyring), b"user", description, 0)
    """
)


@pytest.mark.parametrize("mode", ["warm", "cold"])
def test_nothing_a_snippet_leaves_in_ipc_keyrings_or_descriptors_reaches_the_next(
    mode: str, warm: Harness, cold: Harness
) -> None:
    box = warm if mode == "warm" else cold
    plant = box.run(
        KEYS
        + script(
            """
            IPC_CREAT = 0o1000
            shm = libc.shmget(0x15A1, 4096, IPC_CREAT | 0o666)
            queue = libc.msgget(0x15A2, IPC_CREAT | 0o666)
            print("planted", shm, queue, add(b"issuemine-planted", -4), add(b"issuemine-session", -5))
            held = open("held.txt", "w")  # left open at exit
            """
        )
    )
    planted = plant.result["tail"].split("planted ")[-1].split()
    assert all(int(x) >= 0 for x in planted[:2]), plant.result["tail"]  # the IPC objects were made
    if box.zygote.info.get("syscall_filter"):  # keys are refused outright
        assert planted[2:] == ["-1", "-1"]
    else:
        assert all(int(x) >= 0 for x in planted[2:]), plant.result["tail"]
    probe = box.run(
        KEYS
        + script(
            """
            shm = open("/proc/sysvipc/shm").read().splitlines()[1:]
            msg = open("/proc/sysvipc/msg").read().splitlines()[1:]
            keys = [search(b"issuemine-planted", -4), search(b"issuemine-session", -5)]
            fds = {int(fd): os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}")}
            print("ipc", len(shm), len(msg), "keys", keys)
            print("fds", sorted((fd, target) for fd, target in fds.items() if fd > 2))
            """
        )
    )
    tail = probe.result["tail"]
    assert "ipc 0 0 keys [-1, -1]" in tail, tail
    extra = eval(tail.split("fds ")[-1].splitlines()[0])
    # Beyond stdin, stdout and stderr: at most the shim's events socket (and listdir's own).
    assert all(target.startswith("socket:") or target.startswith("/proc/") for _, target in extra), extra
    assert sum(target.startswith("socket:") for _, target in extra) <= 1, extra


def test_the_next_snippet_cannot_find_the_previous_source_in_its_memory(warm: Harness) -> None:
    secret = "issuemine-canary-" + "5be1f00d" * 4
    warm.run(f"SECRET = {secret!r}\nprint(SECRET[::-1])\n")
    half, rest = secret[:20], secret[20:]
    # The probe never holds the whole canary: it looks for the first half, then compares what
    # follows with the rest XOR-ed with 1 (so the canary itself is never built in its memory).
    flipped = bytes(b ^ 1 for b in rest.encode())
    probe = warm.run(
        script(
            f"""
            import re
            half, flipped = {half.encode()!r}, {flipped!r}
            found = 0
            with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
                for line in maps:
                    fields = line.split()
                    if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5].startswith("/")):
                        continue
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    if end - start > 1 << 30:
                        continue
                    try:
                        mem.seek(start)
                        data = mem.read(end - start)
                    except OSError:
                        continue
                    at = data.find(half)
                    while at != -1:
                        tail = data[at + len(half) : at + len(half) + len(flipped)]
                        found += bytes(b ^ 1 for b in tail) == flipped
                        at = data.find(half, at + 1)
            print("found", found)
            """
        )
    )
    assert "found 0" in probe.result["tail"], probe.result["tail"]


def test_a_poison_pill_in_a_batch_of_five_spoils_only_its_own_verdict(warm: Harness) -> None:
    honest = [
        HONEST,
        (SNIPPETS / "e_wrong_model.py").read_text(),
        (SNIPPETS / "b_unsupported_operator.py").read_text(),
        (SNIPPETS / "g_not_runnable.py").read_text(),
    ]
    alone_verdicts = [warm.run(s).verdict.verdict for s in honest]
    poison = script(
        """
        import os, signal
        os.makedirs("torch", exist_ok=True)
        with open("torch/__init__.py", "w") as handle:
            handle.write("raise SystemExit('planted')\\n")
        with open("/dev/shm/left", "w") as handle:
            handle.write("x")
        os.chmod(".", 0o555)
        os.kill(os.getppid(), signal.SIGKILL)  # the run's server process: same user
        """
    )
    batch = [*honest[:2], poison, *honest[2:]]
    verdicts = [warm.run(s).verdict for s in batch]
    assert [v.verdict for i, v in enumerate(verdicts) if i != 2] == alone_verdicts
    assert verdicts[2].verdict == "sandbox-violation", verdicts[2]


@pytest.mark.parametrize("which", ["server", "zygote"])
def test_a_snippet_that_stops_its_run_server_is_named_and_the_next_run_is_served(which: str, warm: Harness) -> None:
    """SIGSTOP of the process serving the run (its parent) or of the zygote that forks the servers
    (its grandparent): the run is that snippet's `server-stopped` violation, decided without waiting
    out a time-out, and the next snippet gets its verdict as alone."""
    expected = alone(warm)
    stop = script(
        f"""
        import os, signal
        def parent(pid):
            with open(f"/proc/{{pid}}/stat") as handle:
                return int(handle.read().rsplit(")", 1)[1].split()[1])
        target = os.getppid() if {which!r} == "server" else parent(os.getppid())
        print("stopping", target, flush=True)
        os.kill(target, signal.SIGSTOP)
        """
    )
    outcome = warm.run(stop)
    assert outcome.verdict.verdict == "sandbox-violation", outcome.verdict
    assert outcome.verdict.evidence["violation"] == "server-stopped", outcome.verdict
    assert not outcome.result.get("timed_out")
    assert alone(warm) == expected
