"""Notebook values on the wire: cloudpickle, then base64, both ways.

``--export`` sends ``{name: value}`` this way for the workers to put into their
globals before the cell runs; ``--result`` receives rank 0's value this way.
cloudpickle is used because it pickles what people define in notebooks
(functions, lambdas, classes of ``__main__``) by value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import cloudpickle

from .errors import LavahubError


def pack(values: Mapping[str, Any]) -> str:
    """The base64 of the cloudpickled ``values``; names the value that cannot be pickled."""
    try:
        data = cloudpickle.dumps(dict(values))
    except Exception:
        for name, value in values.items():
            try:
                cloudpickle.dumps(value)
            except Exception as exc:
                raise LavahubError(
                    f"cannot export {name!r}: {type(exc).__name__}: {exc}",
                    "only values that can be pickled can be sent to the workers",
                ) from None
        raise
    return base64.b64encode(data).decode("ascii")


def unpack(encoded: str) -> Any:
    """The value that ``pack`` (or a worker doing the same) encoded."""
    try:
        return cloudpickle.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise LavahubError("the job's result is not valid base64", str(exc)) from None
    except Exception as exc:
        raise LavahubError(
            f"cannot load the job's result: {type(exc).__name__}: {exc}",
            "the workers' Python and packages must match the notebook's",
        ) from None
