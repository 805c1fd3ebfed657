"""The `README.md` model card of a saved model, written from its config.

A Hugging Face style card (YAML front matter, then Markdown): what the model is, the task and
its data split, the training recipe, the measured metrics, the intended use, and how to load it
with bptt and with PyTorch. Every figure in it comes from the config it sits beside, so the
card cannot disagree with the checkpoint.
"""
from __future__ import annotations

import json

DEFAULT_USE = ("Teaching and benchmarking: a small model trained with bptt to show "
               "backpropagation and its memory strategies. Not validated for any decision "
               "that matters outside that setting.")


def model_card(config: dict, directory: str) -> str:
    """The card's text for a checked `config`; `directory` is the path the snippets load."""
    task = config.get("task", "unspecified")
    lines = ["---", "library_name: bptt", "tags:", "- bptt", "- numpy",
             f"- {config['architecture']}"]
    if "task" in config:
        lines.append(f"- {json.dumps(task)}")
    if config.get("metrics"):
        lines += ["metrics:"] + [f"- {json.dumps(name)}" for name in config["metrics"]]
    lines += ["---", "", f"# {describe(config)}: {task}", "",
              f"A {describe(config)} saved by bptt (`format_version` "
              f"{config['format_version']}): `config.json` describes it, `model.safetensors` "
              f"holds its weights in PyTorch's names and (out, in) shapes, and this card says "
              f"how it was made.", ""]
    lines += _io_section(config)
    for title, key in (("Data", "data"), ("Training recipe", "training")):
        if config.get(key):
            lines += [f"## {title}", ""] + [f"- {name}: {_value(v)}"
                                            for name, v in config[key].items()] + [""]
    if config.get("metrics"):
        lines += ["## Measured", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {name} | {_value(v)} |" for name, v in config["metrics"].items()] + [""]
    lines += ["## Intended use", "", config.get("intended_use", DEFAULT_USE), ""]
    lines += _loading_section(config, directory)
    return "\n".join(lines)


def describe(config: dict) -> str:
    """A short name of the architecture, e.g. "4-32-3 tanh MLP" or "lstm RNN (hidden 64)"."""
    dropout = f", dropout {config['dropout']:g}" if config.get("dropout") else ""
    if config["architecture"] == "mlp":
        sizes = "-".join(str(s) for s in config["sizes"])
        return f"{sizes} {config['activation']} MLP ({config['dtype']}{dropout})"
    return (f"{config['cell']} RNN ({config['input_size']} inputs, hidden "
            f"{config['hidden_size']}, {config['output_size']} outputs, {config['dtype']}"
            f"{dropout})")


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "null" if value is None else str(value)


def _io_section(config: dict) -> list[str]:
    lines = ["## Inputs and outputs", ""]
    if "features" in config:
        lines.append("- inputs: " + ", ".join(f"`{f}`" for f in config["features"]))
    if "input_mean" in config:
        lines.append("- normalisation (applied by `Pretrained.outputs` and `predict`): "
                     "x' = (x - input_mean) / input_std, with the training split's statistics")
    if "classes" in config:
        lines.append("- outputs: logits of " + ", ".join(f"`{c}`" for c in config["classes"]))
    if config["architecture"] == "rnn":
        steps = "every step" if config["every_step"] else "the last step"
        lines.append(f"- a {config['loss']} read-out at {steps}; inputs of shape (T, B, "
                     f"{config['input_size']})")
    return lines + [""] if len(lines) > 2 else []


def _loading_section(config: dict, directory: str) -> list[str]:
    lines = ["## How to load", "", "With bptt:", "", "```python",
             "from bptt.training.pretrained import from_pretrained",
             "", f"pretrained = from_pretrained({json.dumps(directory)})",
             "model, config = pretrained.model, pretrained.config"]
    if config["architecture"] == "mlp":
        lines.append("# predictions = pretrained.predict(x)  # x: (n, "
                     f"{config['sizes'][0]}) raw inputs, in the order of config['features']")
    else:
        lines.append("# outputs = pretrained.outputs(inputs)  # inputs: (T, B, "
                     f"{config['input_size']})")
    lines += ["```", "", "With PyTorch (the tensors are PyTorch's layout):", "", "```python",
              "import torch", "from safetensors.torch import load_file", "",
              f"state = load_file({json.dumps(directory + '/model.safetensors')})"]
    dtype = "torch.float64" if config["dtype"] == "float64" else "torch.float32"
    if config["architecture"] == "mlp":
        sizes, act = config["sizes"], {"tanh": "Tanh", "relu": "ReLU",
                                       "sigmoid": "Sigmoid"}[config["activation"]]
        modules, positions = [], []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if k == len(sizes) - 2 and config.get("dropout"):
                modules.append(f"torch.nn.Dropout({config['dropout']!r})")
            positions.append(len(modules))
            modules.append(f"torch.nn.Linear({n_in}, {n_out})")
            if k < len(sizes) - 2:
                modules.append(f"torch.nn.{act}()")
        lines += [f"net = torch.nn.Sequential({', '.join(modules)}).to({dtype}).eval()",
                  f"position = {positions}  # index of each Linear in the Sequential",
                  "net.load_state_dict({f\"{position[int(name.split('.')[1])]}.\" "
                  "+ name.split('.')[2]: value for name, value in state.items()})"]
    else:
        cls = {"rnn": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}[config["cell"]]
        D, H, n_out = config["input_size"], config["hidden_size"], config["output_size"]
        lines += [f"cell = torch.nn.{cls}({D}, {H}).to({dtype})",
                  f"readout = torch.nn.Linear({H}, {n_out}).to({dtype})",
                  "cell.load_state_dict({k[5:]: v for k, v in state.items() "
                  "if k.startswith('cell.')})",
                  "readout.load_state_dict({k[8:]: v for k, v in state.items() "
                  "if k.startswith('readout.')})"]
    return lines + ["```", ""]
