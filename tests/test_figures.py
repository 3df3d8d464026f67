import pytest

from figures import lyapunov as lyapunov_figure
from figures import spectra as spectra_figure
from rnn_dynamics import StudyConfig, TrainConfig, run_study, write_dataset


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory):
    config = StudyConfig(seq_len=[10, 16], inits=["identity", "he"], nonlinearities=["relu", "tanh"], hidden=6,
                         preset="tiny", train=TrainConfig(steps=4, probe_every=2), lyapunov=True)
    return write_dataset(run_study(config, progress=False), tmp_path_factory.mktemp("data") / "s.nc")


def test_figures_are_written_as_png_and_pdf(dataset_path, tmp_path):
    assert spectra_figure.main(["--data", str(dataset_path), "--out", str(tmp_path), "--seq-len", "16"]) == 0
    assert lyapunov_figure.main(["--data", str(dataset_path), "--out", str(tmp_path)]) == 0
    for name in ("eigenvalues", "jacobian_norms", "lyapunov_spectra", "lyapunov_largest"):
        png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.nc"], "no dataset at 'missing.nc'"),
    (["--seq-len", "99"], "seq_len 99 is not in the dataset; valid: 10, 16"),
])
def test_bad_figure_input(args, message, dataset_path, tmp_path):
    if args[0] != "--data":
        args = ["--data", str(dataset_path), *args]
    with pytest.raises(SystemExit) as exit_info:
        spectra_figure.main([*args, "--out", str(tmp_path)])
    assert message in str(exit_info.value.code)
    assert not list(tmp_path.iterdir())
