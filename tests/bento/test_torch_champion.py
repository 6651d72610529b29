"""A PyTorch champion behind the real service (`bentoml serve`): it scores and explains on the device the service
chose, which /readyz and /metrics name; asked for CUDA where there is none, the service says it cannot load the
model rather than scoring on the CPU unnoticed. (On a GPU, tests/gpu runs the scoring path on CUDA.)"""

import httpx
import pytest
from support.service import Server, build_world, serve

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra (make install TORCH=cpu)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis_url):
    root = tmp_path_factory.mktemp("torch")
    world = build_world(
        root / "world", 30, redis_url.rsplit("/", 1)[0] + "/7", family="torch_mlp",
        extra_env={"STOCKPRED_MODEL_DEVICE": "cpu"},  # on a developer's GPU host too (tests/gpu covers CUDA)
    )  # fmt: skip
    with serve(world.env, root / "bento.log") as base:
        yield Server(base, world, root / "bento.log")


def test_a_pytorch_champion_answers_with_explanations_on_the_device_it_reports(server):
    ready = httpx.get(f"{server.base}/readyz").json()
    assert ready["ready"] and ready["model"]["family"] == "torch_mlp" and ready["model"]["device"] == "cpu"
    one = server.post("/predict", {"ticker": "T00003"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model_family"] == "torch_mlp" and len(body["top_contributions"]) == 5
    assert body["interval_low"] < body["predicted_return"] < body["interval_high"]
    many = server.post("/predict_batch", {"tickers": [f"T{i:05d}" for i in range(30)], "explain": True})
    assert many.status_code == 200 and many.json()["count"] == 30
    metrics = httpx.get(f"{server.base}/metrics").text
    info = [line for line in metrics.splitlines() if line.startswith("stockpred_model_info{")]
    assert any('family="torch_mlp"' in line and 'device="cpu"' in line and line.endswith(" 1.0") for line in info)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the refusal is for one without")
def test_asked_for_cuda_without_a_gpu_the_service_is_not_ready_and_says_why(tmp_path, redis_url):
    world = build_world(
        tmp_path / "world", 5, redis_url.rsplit("/", 1)[0] + "/8", family="torch_mlp",
        extra_env={"STOCKPRED_MODEL_DEVICE": "cuda"},
    )  # fmt: skip
    with serve(world.env, tmp_path / "bento.log", ready_path="/livez") as base:
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503
        assert any("cannot load the champion" in reason for reason in ready.json()["reasons"])
    assert "torch sees no CUDA GPU" in (tmp_path / "bento.log").read_text()  # the cause, in the log
