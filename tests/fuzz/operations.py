"""What both API fuzzers share: the operations a document serves, and one operation fuzzed.

(schemathesis's own pytest loader, `from_fixture`, does not run on pytest 9, so
each operation is one test item, its cases drawn with `@given`.)
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

import schemathesis

# loaded now, at collection: schemathesis imports its OpenAPI loader lazily, and pytest's assertion
# rewriting of it deep inside a fixture's stack hit CPython 3.11's "AST constructor recursion depth
# mismatch" (a SystemError) in one CI run
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def served(schema: schemathesis.BaseSchema) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in the document; fails if one is invalid."""
    operations = list(schema.get_all_operations())
    assert all(isinstance(op, Ok) for op in operations), "the document has an invalid operation"
    return {(op.ok().method.upper(), op.ok().path) for op in operations if isinstance(op, Ok)}


def fuzz(
    schema: schemathesis.BaseSchema,
    method: str,
    path: str,
    mode: GenerationMode,
    *,
    job_ids: Sequence[str],
    headers: dict[str, str],
    examples: int,
) -> None:
    """`examples` generated cases of one operation, sent with `headers`: none may answer a 5xx.

    Generated ids name no job, so an operation on `{id}` is also aimed at `job_ids`.
    """
    operation = schema[path][method]
    cases = operation.as_strategy(mode)
    if "{id}" in path:
        cases |= st.sampled_from(list(job_ids)).flatmap(
            lambda job_id: operation.as_strategy(mode, path_parameters={"id": job_id})
        )

    @given(case=cases)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    # No garbage collection while hypothesis parses sources: CPython 3.11 keeps one AST recursion
    # counter per interpreter, and a finalizer that runs mid-parse (one whose exception pytest
    # formats with `ast`) leaves it wrong, so the outer parse fails with "AST constructor recursion
    # depth mismatch" (a SystemError; cpython#106905), which one CI run took for a flaky test.
    gc.collect()
    gc.disable()
    try:
        run()
    finally:
        gc.enable()
