"""`bptt-serve`: bad directories or log paths end with one `Error:` line and exit code 2."""
from click.testing import CliRunner

from bptt.serve.main import main


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_a_missing_directory_is_one_error_line(tmp_path):
    result = invoke(str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path / 'nowhere'} does not exist; expected a checkpoint directory "
        f"(config.json + model.safetensors) or a directory of them"]


def test_a_damaged_checkpoint_is_one_error_line(model_dir):
    (model_dir / "iris" / "config.json").write_text("{")
    result = invoke(str(model_dir))
    assert result.exit_code == 2 and result.output.startswith("Error: ")
    assert "config.json: not valid JSON" in result.output and len(result.output.splitlines()) == 1


def test_an_unwritable_log_is_one_error_line(checkpoints, tmp_path):
    result = invoke(str(checkpoints), "--log-file", str(tmp_path / "no" / "such" / "log.jsonl"))
    assert result.exit_code == 2
    assert result.output.startswith("Error: cannot write the request log")


def test_directories_are_required():
    result = invoke()
    assert result.exit_code == 2 and "Missing argument 'DIRECTORIES...'" in result.output
