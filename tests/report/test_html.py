import base64
import html
import io
import re

import numpy as np
import pytest

import gdlens as gd
import gdlens.report
from gdlens.report.html import format_value, write_report


def figure_ids(text):
    return re.findall(r"<img id='(fig-[^']+)'", text)


def check_images(text):
    """Every embedded figure decodes as a PNG that is not blank."""
    import matplotlib.image as mpimg

    uris = re.findall(r"src='data:image/png;base64,([^']+)'", text)
    assert uris
    for uri in uris:
        img = mpimg.imread(io.BytesIO(base64.b64decode(uri)), format="png")
        assert img.shape[0] > 100 and img[..., :3].std() > 0.05


def sections(text):
    return re.findall(r"<h2>([^<]+)</h2>", text)


def test_run_report(tiny_run, tmp_path):
    from gdlens.report.panels import section_title

    store, run = tiny_run
    out = gdlens.report(run, tmp_path / "sub" / "run.html")  # the package is callable
    text = out.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text.lower()
    titles = [html.unescape(t) for t in sections(text)]
    probes = [p["name"] for p in run.config["probes"]]  # default probes + KP, in the order given
    declared = [section_title(n, run.summary["probes"][n]) for n in probes]
    # the overview: the loss of every step, and what no declared panel draws
    assert titles[:2] == ["Configuration", "Summary"] and titles[2] in ("Loss", "Loss and accuracy")
    assert titles[3:] == declared
    ids = figure_ids(text)
    assert len(ids) == len(set(ids)) >= 1 + len(probes)
    assert text.count("<img") == len(ids) and text.count("alt='") == len(ids)
    for key in ("final_train_loss", "kp/rank_G", "metrics/test/accuracy"):
        assert re.search(f"<th>{re.escape(key)}</th><td>[^<]*</td><td class='num'>{re.escape(format_value(run.summary[key]))}",
                         text), key
    check_images(text)


def test_store_and_prefix(tiny_run, tmp_path):
    store, run = tiny_run
    a = write_report(store.path, tmp_path / "a.html", name=run.id[:6]).read_text()
    assert f"gdlens run {run.id}" in a
    with pytest.raises(ValueError, match="name="):
        write_report(store, tmp_path / "b.html")
    with pytest.raises(ValueError, match="name="):
        write_report(run, tmp_path / "b.html", name="x")


def test_run_without_declarations_gets_generic_sections(tmp_path):
    """A run recorded before probes declared their panels (or by a user's own logging): one
    section per name prefix, generic panels, arrays as matrices; the summary grouped the same
    way."""
    store = gd.open_store(tmp_path / "s")
    run = store.create_run({"lr": 0.01, "task": {"name": "synthetic"}})
    rng = np.random.default_rng(0)
    for step in (0, 1, 3, 10, 30):
        run.log(step, {"metrics/train/loss": 1 / (step + 1), "metrics/train/accuracy": 0.5 + step / 100,
                       "mystery/value": step + 1.0, "mystery/value_se": 0.1, "mystery/never": float("nan"),
                       "train_step/loss": 1 / (step + 2)})
        run.log_array(step, "weights/readout", rng.normal(size=(3, 4)))
    run.finish({"final_train_loss": 0.0123456789, "mystery/value": 31.0})
    text = write_report(run, tmp_path / "all.html").read_text()
    assert sections(text) == ["Configuration", "Summary", "Loss and accuracy", "Metrics", "Mystery", "Weights"]
    assert "<td class='num'>0.0123457</td>" in text
    assert "https://" not in text and "http://" not in text
    assert len(figure_ids(text)) == 4  # the overview and one figure per section
    check_images(text)


def test_clocks_from_the_summary_alone(tmp_path):
    """A grokking run keeps its clocks in the summary only: the report still lists them (a clocks
    table under the loss), and only steps (fit, generalization, representation) count as clocks,
    not eps, threshold, ratios or drifts."""
    from gdlens.report.html import _clocks

    store = gd.open_store(tmp_path / "s")
    run = store.create_run({"lr": 0.01, "task": {"name": "modular_addition"}})
    for step in (0, 10, 100, 1000):
        run.log(step, {"metrics/train/loss": 1 / (step + 1), "metrics/test/accuracy": min(1.0, step / 900)})
    summary = {"clocks/fit": 120, "clocks/generalization": 900, "clocks/representation": 950,
               "clocks/fit@0.001": 300, "clocks/eps": 0.01, "clocks/threshold": 0.95,
               "clocks/rep_over_fit": 7.9, "clocks/energy_drift": 0.3}
    run.finish(summary)
    assert _clocks(run.metrics(wide=True), summary) == {
        "fit": 120.0, "generalization": 900.0, "representation": 950.0, "fit@0.001": 300.0}
    text = write_report(run, tmp_path / "clocks.html").read_text()
    assert "<h2>Loss and accuracy</h2>" in text
    table = text[text.index("clocks-table"):]
    table = table[: table.index("</table>")]
    assert "<th>generalization</th><td class='num'>900</td>" in table
    assert "threshold" not in table and "eps" not in table and "energy_drift" not in table


def test_sweep_report(tmp_path):
    store = gd.open_store(tmp_path / "s")
    for lr in (0.1, 0.01):
        for width in (8, 16):
            run = store.create_run({"lr": lr, "width": width, "task": "t"}, sweep="grid")
            run.log(0, {"metrics/train/loss": lr * width})
            run.finish({"final_train_loss": lr * width, "metrics/test/accuracy": 0.5})
    text = gdlens.report(store, tmp_path / "sweep.html", name="grid").read_text()
    assert "gdlens sweep grid" in text and "<h2>Phase diagrams</h2>" in text
    assert "Swept axes: lr, width" in text and len(figure_ids(text)) == 3  # two phase diagrams, the runs
    assert "<h2>Runs compared</h2>" in text
    assert "<td class='num'>1.6</td>" in text
    check_images(text)


def test_one_axis_sweep_report_has_curves_and_compares_its_runs(tmp_path):
    store = gd.open_store(tmp_path / "s")
    for g in (0.5, 1.0, 2.0):
        run = store.create_run({"g": g, "lr": 0.01}, sweep="gs")
        for step in (0, 1, 10, 100):
            run.log(step, {"train_step/loss": g / (step + 1), "kp/rank_G": 10 * g + step})
        run.finish({"final_train_loss": g / 101})
    text = gdlens.report(store, tmp_path / "gs.html", name="gs").read_text()
    assert "<h2>Over the swept axis</h2>" in text and "<h2>Runs compared</h2>" in text
    assert "<h2>Phase diagrams</h2>" not in text
    assert len(figure_ids(text)) == 2
    check_images(text)


def test_format_value():
    assert format_value(0.1234567891) == "0.123457" and format_value(3) == "3" and format_value(None) == "None"
    assert format_value(True) == "True" and format_value(float("nan")) == "nan"


def test_runs_compared_takes_one_declared_curve_per_probe(tmp_path):
    """A small sweep compares the losses, then one curve per declared probe: a key its first
    curve panel names exactly, else its total."""
    from gdlens.report.html import _compared_columns

    decls = {"kp": {"title": "KP", "type": "KPProbe", "settings": {},
                    "metrics": [{"key": "rank_K", "label": "effective rank of K"}],
                    "panels": [{"title": "ranks", "keys": ["rank_*", "rank_K"], "ylabel": "effective rank"}]},
             "norm": {"title": "norms", "type": "N", "settings": {}, "metrics": [],
                      "panels": [{"title": "norms", "keys": ["*"], "ylabel": "‖θ‖"}]}}
    store = gd.open_store(tmp_path / "s")
    for g in (0.5, 2.0):
        run = store.create_run({"g": g, "probes": [{"name": "norm"}, {"name": "kp"}]}, sweep="gs")
        for step in (0, 1, 10):
            run.log(step, {"train_step/loss": g / (step + 1), "kp/rank_G": 3.0, "kp/rank_K": 5.0 + g,
                           "norm/a": 1.0, "norm/total": 2.0})
        run.finish({"final_train_loss": g, "probes": decls})
    metrics = {r["id"]: store.metrics(r["id"], wide=True) for r in store.runs(as_frame=False)}
    cols, titles, ylabels, _ = _compared_columns(metrics, run.summary, run.config)
    assert cols == ["train_step/loss", "norm/total", "kp/rank_K"]  # in the config's order
    assert titles["kp/rank_K"] == "effective rank of K (kp/rank_K)" and ylabels["norm/total"] == "‖θ‖"
    text = gdlens.report(store, tmp_path / "gs.html", name="gs").read_text()
    assert "<h2>Runs compared</h2>" in text


def test_two_probes_of_one_class_get_two_sections(tmp_path):
    decl = {"title": "Norms", "type": "N", "settings": {}, "metrics": [],
            "panels": [{"title": "norm", "keys": ["x"], "ylabel": "‖θ‖"}]}
    store = gd.open_store(tmp_path / "s")
    run = store.create_run({"probes": [{"name": "a"}, {"name": "b"}]})
    run.log(0, {"a/x": 1.0, "b/x": 2.0})
    run.finish({"probes": {"a": decl, "b": decl}})
    text = write_report(run, tmp_path / "two.html").read_text()
    assert sections(text)[-2:] == ["Norms (a)", "Norms (b)"]
    assert len(set(re.findall(r"<section id='([^']+)'", text))) == len(sections(text))
