"""Chapter 7's figures and panels: each states its point, draws the numbers it is given, is
deterministic, and the panels recompute when a control changes (without a browser)."""

import pytest

from workbook.labs import setup_notebook
from workbook.labs.ch07_mesh import experiments, graph_runs, traffic_runs
from workbook.labs.ch07_mesh import figures as viz
from workbook.mesh import policies_from

setup_notebook()


@pytest.fixture(scope="module")
def edges():
    return graph_runs.edge_stats(graph_runs.mesh_run(0, v2_weight=50, abort_percent=10.0, duration=20.0))


def test_graph_layout_is_layered_and_deterministic(edges):
    pos = viz.graph_layout(edges)
    assert pos == viz.graph_layout(list(reversed(edges)))
    assert pos[graph_runs.INGRESS][0] == 0.0
    assert {pos[s][0] for s in ("order-service", "user-service")} == {1.0}
    assert {pos[n][0] for n in ("order-service v1", "order-service v2", "user-service v1")} == {2.0}
    # payment-service is called by order-service's workloads too: it sits after them
    assert (pos["payment-service"][0], pos["payment-service v1"][0]) == (3.0, 4.0)
    # each service's versions sit beside it: no edge from layer 1 to layer 2 crosses another
    ys = sorted((pos[e["source"]][1], pos[e["target"]][1]) for e in edges if pos[e["source"]][0] == 1.0)
    assert [t for _, t in ys] == sorted(t for _, t in ys)


def test_an_edge_skipping_layers_arcs_over_the_graph(edges):
    fig = viz.mesh_graph_figure(edges)
    lines = [t for t in fig.data if t.mode == "lines"]
    pos = viz.graph_layout(edges)
    top = max(y for _, y in pos.values())
    for e, line in zip(edges, lines, strict=True):
        span = pos[e["target"]][0] - pos[e["source"]][0]
        assert len(line.x) == (2 if span == 1 else 21), e
        if span > 1:
            assert max(line.y) == pytest.approx(top + 0.45, abs=0.01)


def test_mesh_graph_labels_every_edge_and_colours_by_error_rate(edges):
    fig = viz.mesh_graph_figure(edges)
    labels = [a.text for a in fig.layout.annotations]
    assert labels == [viz.edge_label(e) for e in edges]
    orders = next(e for e in edges if e["target"] == "order-service")
    assert viz.edge_label(orders) in labels and "err" in viz.edge_label(orders)
    colours = [t.line.color for t in fig.data if t.mode == "lines"]
    assert colours.count(viz.BAD) == 1 and viz.OK in colours  # only the aborted orders edge is red
    assert "worst edge istio-ingressgateway -> order-service" in fig.layout.title.text
    assert fig.to_json() == viz.mesh_graph_figure(edges).to_json()


def test_outlier_figure_shades_every_ejection():
    run = traffic_runs.outlier_run(0)
    spans = viz.ejections(run, 120.0)
    assert [(round(a), round(b)) for a, b, _ in spans] == [(20, 60), (60, 120)]
    assert [label for _, _, label in spans] == ["ejection 1, 30 s", "ejection 2, 60 s"]
    fig = viz.outlier_figure(run)
    assert len(fig.layout.shapes) == 1 + len(spans)  # the failing window + one band per ejection
    assert [a.text for a in fig.layout.annotations][1:] == [f"ejected: {label}" for _, _, label in spans]
    assert f"{run['errors']} errors" in fig.layout.title.text


def test_canary_figure_shows_each_analysis_pass_or_fail():
    runs = [traffic_runs.canary_run("healthy"), traffic_runs.canary_run("errors")]
    fig = viz.canary_figure(runs)
    assert [a.text for a in fig.layout.annotations] == ["v2 healthy: promoted", "v2 errors: rolled back"]
    marks = [t for t in fig.data if t.mode == "markers+text"]
    assert list(marks[0].marker.symbol) == ["circle"] * 4 and list(marks[1].marker.symbol) == ["x", "x"]
    assert marks[1].text[0].startswith("92.2 %")
    assert list(fig.data[2].y)[-1] == 0  # rolled back: the weight ends at 0


def test_authorization_figure_codes_right_and_wrong_decisions():
    rows = {v: experiments.authorization_rows(policies_from(experiments.mesh_resources(v)))
            for v in experiments.VERSIONS}
    fig = viz.authorization_figure(rows)
    assert len(fig.data) == 4
    wrong = [sum(v == 3 for row in t.z for v in row) for t in fig.data]
    comparison = experiments.compare_policies()
    assert wrong == [comparison[v][t]["wrongly_allowed"] for v in experiments.VERSIONS for t in experiments.TARGETS]
    assert wrong[2:] == [0, 0] and min(wrong[:2]) > 50


def test_authz_decision_names_the_policy_and_rule():
    d = viz.authz_decision("article", "user-service", experiments.PAYMENT_SVC, "DELETE", "/admin/users",
                           "authorization", "Bearer x")
    assert (d["decision"], d["policy"], d["rule"]) == ("ALLOW", "default/user-service-authz", 2)
    d = viz.authz_decision("corrected", "user-service", experiments.PAYMENT_SVC, "DELETE", "/admin/users",
                           "authorization", "Bearer x")
    assert d["decision"] == "DENY" and d["action"] == "DEFAULT"
    assert viz.authz_text(d).startswith("DENY: by default, no rule decided (ALLOW policies apply")
    d = viz.authz_decision("corrected", "order-service", experiments.USER_SVC, "PUT", "/api/orders/7",
                           "x-user-id", "u-1")
    assert d["decision"] == "ALLOW" and d["rule"] == 0
    assert viz.authz_text(d).startswith("ALLOW: ALLOW policy default/order-service-authz, rule 0")
    with pytest.raises(ValueError, match="target"):
        viz.authz_decision("article", "nobody", None, "GET", "/")


def test_authz_tester_redecides_when_a_control_changes():
    panel = viz.authz_tester()
    assert "ALLOW" in panel.result.value and "rule 2" in panel.result.value
    assert "</b> ALLOW policy default/user-service-authz, rule 2" in panel.result.value
    panel.controls["version"].value = "corrected"
    assert "DENY" in panel.result.value
    panel.controls["caller"].value = "api-gateway"
    panel.controls["method"].value = "GET"
    panel.controls["path"].value = "/api/users/42"
    assert "ALLOW" in panel.result.value and "rule 0" in panel.result.value
    panel.controls["value"].value = "Basic abc"
    assert "DENY" in panel.result.value


def test_mesh_panel_redraws_the_edges_when_a_slider_moves():
    panel = viz.mesh_panel(0, duration=10.0)
    before = [a.text for a in panel.figure.layout.annotations]
    assert panel.summary.value.startswith("v2 weight 20 %, abort 0 %")
    panel.controls["abort_percent"].value = 30.0
    after = [a.text for a in panel.figure.layout.annotations]
    assert after != before and panel.summary.value.startswith("v2 weight 20 %, abort 30 %")
    assert any(t.line.color == viz.BAD for t in panel.figure.data if t.mode == "lines")


def test_live_change_figure_marks_each_applied_change():
    live = graph_runs.live_change_run(0)
    fig = viz.live_change_figure(live)
    assert [a.text for a in fig.layout.annotations] == [f"apply: {note}" for _, note in live["applied"]]
    assert [s.x0 for s in fig.layout.shapes] == [30.0, 60.0]
    assert list(fig.data[0].y) == [100 * w["v2_share"] for w in live["windows"]]
