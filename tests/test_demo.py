"""`featx demo`: the Quick start's first command, end to end."""
import pandas as pd
from click.testing import CliRunner

from featx.cli import main


def test_demo_synthesises_and_extracts(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["-q", "demo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    csv = out / "features.csv"
    assert str(csv) in result.output
    table = pd.read_csv(csv)
    assert len(table) == 24  # 3 genres x 4 clips x 2 full 3-s segments
    assert sorted(table["label"].unique()) == ["arpeggio", "beats", "drone"]
    means = table.groupby("label").mean(numeric_only=True)
    # the synthetic genres differ the way their construction says they should
    assert means.loc["beats", "zero_crossing_rate_mean"] > 5 * means.loc["drone", "zero_crossing_rate_mean"]
    assert means.loc["drone", "spectral_centroid_mean"] < means.loc["arpeggio", "spectral_centroid_mean"]
    assert means.loc["drone", "perceptr_var"] < means.loc["beats", "perceptr_var"]
    # running it again replaces the corpus and table cleanly
    again = CliRunner().invoke(main, ["-q", "demo", "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert len(pd.read_csv(csv)) == 24
