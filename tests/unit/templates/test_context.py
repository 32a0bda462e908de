"""The templates service's validation: the config's messages, each error's field the template's own."""

import pytest

from services.templates.context import Context
from spawner.errors import PublicError


class Offline(Context):
    """Only `validated`, against fixed projects: no store, no hub."""

    def __init__(self) -> None:
        pass

    async def projects(self) -> set[str]:
        return {"default"}


NEW = {"slug": "r-lang", "image": "quay.io/jupyter/r-notebook:2025-01-06"}


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({**NEW, "max_gpus": "two"}, "max_gpus", "template.max_gpus: must be a whole number >= 0, got 'two'"),
        ({**NEW, "projects": ["default", "nope"]}, "projects[1]", "template.projects[1]: no project named"),
        ({**NEW, "env": {"HOME": "/"}}, "env.HOME", "template.env.HOME: is set by lavahub"),
        ({"image": NEW["image"]}, "slug", "template.slug: is required"),
        (["not", "a", "mapping"], None, "template: must be a mapping"),
    ],
)
async def test_an_invalid_template_names_its_own_field(data, field, message):
    with pytest.raises(PublicError) as error:
        await Offline().validated(data)
    assert error.value.field == field and error.value.message.startswith(message)


async def test_a_valid_template_comes_back_checked():
    template = await Offline().validated({**NEW, "projects": ["default"]})
    assert (template.slug, template.projects) == ("r-lang", ("default",))
