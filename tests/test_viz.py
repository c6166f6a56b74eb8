"""Flow diagrams: Mermaid and Graphviz DOT text for a flow's graph."""

from __future__ import annotations

from flowkit import passthrough

from penguiflow_otel import Node, PenguiFlow, create, flow_to_dot, flow_to_mermaid


def controller_flow() -> PenguiFlow:
    """load docs -> controller (a self-looping controller) -> answer, with cycles allowed."""
    load = Node(passthrough, name="load docs")
    controller = Node(passthrough, name="controller", allow_cycle=True)
    answer = Node(passthrough, name="answer")
    return create(load.to(controller), controller.to(controller, answer), answer.to(), allow_cycles=True)


def test_mermaid_draws_a_controller_loop_with_labelled_edges() -> None:
    """The Mermaid text lists boxes, used classes and edges labelled ingress, loop and egress."""
    assert flow_to_mermaid(controller_flow()) == "\n".join(
        [
            "graph TD",
            '    OpenSea["OpenSea"]',
            '    load_docs["load docs"]',
            '    controller["controller"]',
            '    answer["answer"]',
            '    Rookery["Rookery"]',
            "    classDef controller_loop fill:#fef3c7,stroke:#b45309,stroke-width:1px",
            "    classDef endpoint fill:#e0f2fe,stroke:#0369a1,stroke-width:1px",
            "    class OpenSea endpoint",
            "    class controller controller_loop",
            "    class Rookery endpoint",
            "    OpenSea -->|ingress| load_docs",
            "    load_docs --> controller",
            "    controller -->|loop| controller",
            "    controller --> answer",
            "    answer -->|egress| Rookery",
        ]
    )


def test_dot_draws_endpoints_as_ovals_and_the_loop_node_filled() -> None:
    """The DOT text gives endpoints an oval shape, fills the loop node and labels the same edges."""
    assert flow_to_dot(controller_flow()) == "\n".join(
        [
            "digraph PenguiFlow {",
            "    rankdir=TB",
            "    node [shape=box, style=rounded]",
            '    OpenSea [label="OpenSea", shape=oval, style="filled", fillcolor="#e0f2fe"]',
            '    load_docs [label="load docs"]',
            '    controller [label="controller", style="rounded,filled", fillcolor="#fef3c7"]',
            '    answer [label="answer"]',
            '    Rookery [label="Rookery", shape=oval, style="filled", fillcolor="#e0f2fe"]',
            '    OpenSea -> load_docs [label="ingress"]',
            "    load_docs -> controller",
            '    controller -> controller [label="loop"]',
            "    controller -> answer",
            '    answer -> Rookery [label="egress"]',
            "}",
        ]
    )


def test_ids_are_sanitised_and_made_unique_in_the_given_direction() -> None:
    """Names that sanitise to the same id get numbered suffixes; direction and rankdir are used."""
    first, second = Node(passthrough, name="a-b"), Node(passthrough, name="a.b")
    flow = create(first.to(second))

    assert flow_to_mermaid(flow, direction="LR") == "\n".join(
        [
            "graph LR",
            '    OpenSea["OpenSea"]',
            '    a_b["a-b"]',
            '    a_b_2["a.b"]',
            '    Rookery["Rookery"]',
            "    classDef endpoint fill:#e0f2fe,stroke:#0369a1,stroke-width:1px",
            "    class OpenSea endpoint",
            "    class Rookery endpoint",
            "    OpenSea -->|ingress| a_b",
            "    a_b --> a_b_2",
            "    a_b_2 -->|egress| Rookery",
        ]
    )
    assert flow_to_dot(flow, rankdir="LR").splitlines()[1:6] == [
        "    rankdir=LR",
        "    node [shape=box, style=rounded]",
        '    OpenSea [label="OpenSea", shape=oval, style="filled", fillcolor="#e0f2fe"]',
        '    a_b [label="a-b"]',
        '    a_b_2 [label="a.b"]',
    ]


def test_controller_loop_class_appears_only_when_a_loop_exists() -> None:
    """A flow without a loop node defines and uses no controller_loop class."""
    flow = create(Node(passthrough, name="only").to())

    assert "controller_loop" not in flow_to_mermaid(flow)
    assert "#fef3c7" not in flow_to_dot(flow)


def test_a_self_edge_marks_its_node_as_a_loop() -> None:
    """A node wired to itself in a flow with allow_cycles is drawn as a loop without allow_cycle."""
    echo = Node(passthrough, name="echo")
    flow = create(echo.to(echo), allow_cycles=True)
    mermaid = flow_to_mermaid(flow)

    assert "    class echo controller_loop" in mermaid.splitlines()
    assert "    echo -->|loop| echo" in mermaid.splitlines()
    assert '    echo [label="echo", style="rounded,filled", fillcolor="#fef3c7"]' in flow_to_dot(flow)


def test_an_allow_cycle_node_is_a_loop_even_without_its_self_edge() -> None:
    """allow_cycle alone gives a node the controller_loop class."""
    flow = create(Node(passthrough, name="ready", allow_cycle=True).to())

    assert "    class ready controller_loop" in flow_to_mermaid(flow).splitlines()


def test_edges_follow_declaration_order() -> None:
    """Ingress edges come first, then each node's edges in the order its successors were declared."""
    left, right = Node(passthrough, name="left"), Node(passthrough, name="right")
    split, merge = Node(passthrough, name="split"), Node(passthrough, name="merge")
    extra = Node(passthrough, name="extra")
    flow = create(split.to(right, left), left.to(merge), right.to(merge), extra.to(merge), merge.to())

    edges = [line for line in flow_to_dot(flow).splitlines() if " -> " in line]

    assert edges == [
        '    OpenSea -> split [label="ingress"]',
        '    OpenSea -> extra [label="ingress"]',
        "    split -> right",
        "    split -> left",
        "    right -> merge",
        "    left -> merge",
        '    merge -> Rookery [label="egress"]',
        "    extra -> merge",
    ]


def test_quotes_in_names_are_escaped() -> None:
    """A double quote in a node name is backslash-escaped inside both diagrams' labels."""
    flow = create(Node(passthrough, name='say "hi"').to())

    assert '    say__hi_["say \\"hi\\""]' in flow_to_mermaid(flow).splitlines()
    assert '    say__hi_ [label="say \\"hi\\""]' in flow_to_dot(flow).splitlines()


def test_an_empty_flow_draws_only_the_header() -> None:
    """A flow with no nodes has no boxes and no edges."""
    assert flow_to_mermaid(create()) == "graph TD"
    assert (
        flow_to_dot(create())
        == "digraph PenguiFlow {\n    rankdir=TB\n    node [shape=box, style=rounded]\n}"
    )
