"""`seqattn ui`: the MLflow UI on the project's store, bound to this machine only unless --host says
otherwise."""

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from seqattn import cli, mlflow_experiments, tracking


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: TCP_LISTEN
                continue
            if width == 8:  # little-endian IPv4: 0100007F is 127.0.0.1
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
            else:  # four little-endian 32-bit words
                raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, 32, 8))
                found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def test_ui_runs_mlflow_ui_on_the_project_store_and_localhost_without_importing_keras(tmp_path):
    """The command `seqattn ui` execs, read in a fresh process so keras's absence means something."""
    script = (
        "import json, sys\n"
        "from seqattn import cli\n"
        "for argv in (['ui'], ['ui', '--tracking-uri', 'sqlite:///runs.db', '--host', '0.0.0.0', '--port', '5123']):\n"
        "    print(json.dumps(cli.ui_command(cli.parse_arguments(argv, cli.build_parser))))\n"
        "print(json.dumps(sorted(m for m in ('keras', 'mlflow', 'torch') if m in sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120, check=True)
    default, chosen, imported = map(json.loads, result.stdout.splitlines())
    tail = ["-m", "mlflow", "ui", "--backend-store-uri"]
    assert default == [sys.executable, *tail, "sqlite:///mlflow.db", "--host", "127.0.0.1", "--port", "5000",
                       "--workers", "1"]
    assert chosen == [sys.executable, *tail, "sqlite:///runs.db", "--host", "0.0.0.0", "--port", "5123",
                      "--workers", "1"]
    assert imported == []
    # The store the parts log to, by the same rule (seqattn.tracking imports keras, so cli repeats it).
    assert cli.DEFAULT_TRACKING_URI == tracking.DEFAULT_TRACKING_URI


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")  # MLflow's SQLAlchemy use
def test_ui_prepares_the_experiments_and_prints_the_runs_page_of_each_part(tmp_path, monkeypatch, capsys):
    """The pages `seqattn ui` sends a user to: each part's runs table, in model-training mode."""
    executed = []
    monkeypatch.setattr(os, "execv", lambda path, argv: executed.append(argv))  # the server itself: not here
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    uri = f"sqlite:///{tmp_path}/ui.db"
    assert cli.main(["ui", "--tracking-uri", uri, "--host", "0.0.0.0", "--port", "5123"]) == 0
    assert executed and executed[0][executed[0].index("--backend-store-uri") + 1] == uri

    client = MlflowClient(uri)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"MLflow UI on http://127.0.0.1:5123 (store {uri})")  # 0.0.0.0 is no address to open
    for number, part in enumerate(cli.PARTS, start=1):
        experiment = client.get_experiment_by_name(tracking.EXPERIMENTS[part])
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        assert experiment.tags["mlflow.note.content"] == mlflow_experiments.DESCRIPTIONS[part]
        assert lines[number] == (f"  Part {number} ({part}): http://127.0.0.1:5123/#/experiments/"
                                 f"{experiment.experiment_id}/runs?workflowType=machine_learning"
                                 "&viewStateShareKey=seqattn-headline")


def test_mlflow_telemetry_is_off_in_the_project_processes_unless_the_user_opts_in(tmp_path):
    """MLflow's documented opt-out, set on import of seqattn and inherited by `seqattn ui`'s server."""
    probe = "from mlflow.telemetry.utils import is_telemetry_disabled; print(is_telemetry_disabled())"
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no CI or pytest variables: MLflow would collect

    def disabled(prelude: str, **env) -> str:
        return subprocess.run([sys.executable, "-c", prelude + probe], capture_output=True, text=True,
                              env=clean | env, cwd=tmp_path, timeout=120, check=True).stdout.strip()

    assert disabled("") == "False"  # MLflow alone, in this environment
    assert disabled("import seqattn; ") == "True"
    assert disabled("import seqattn; ", MLFLOW_DISABLE_TELEMETRY="false") == "False"


@pytest.mark.parametrize("port", ["0", "-1", "65536", "nan", "inf", "http"])
def test_ui_rejects_a_bad_port_in_one_line(port, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["ui", f"--port={port}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("seqattn ui: error: argument --port: must be a ")
    assert "Traceback" not in err


@pytest.mark.slow
def test_ui_serves_the_store_on_127_0_0_1_only(tmp_path, serve):
    port = serve("seqattn-ui", lambda port: [sys.executable, "-m", "seqattn.cli", "ui", "--tracking-uri",
                                             f"sqlite:///{tmp_path}/mlflow.db", "--port", str(port)], cwd=tmp_path)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5",
                                timeout=30) as response:
        assert "experiments" in json.loads(response.read())
    assert _listening_addresses(port) == {"127.0.0.1"}  # not 0.0.0.0, not ::
    assert (tmp_path / "mlflow.db").is_file()  # the store it was given, not ./mlruns


def test_listening_addresses_tells_localhost_from_all_interfaces():
    """The check above would see a server bound to every interface."""
    with socket.socket() as local, socket.socket() as everywhere:
        local.bind(("127.0.0.1", 0))
        everywhere.bind(("0.0.0.0", 0))
        local.listen()
        everywhere.listen()
        assert _listening_addresses(local.getsockname()[1]) == {"127.0.0.1"}
        assert _listening_addresses(everywhere.getsockname()[1]) == {"0.0.0.0"}
