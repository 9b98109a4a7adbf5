"""Names too long for AWS end in a stable hash of the whole name, never a silent cut (issue 13)."""

from __future__ import annotations

import re

import pytest

from infra import aws_catalog
from infra.naming import DOMAIN_NAME_MAX, domain_name, role_name
from service.contract import PROJECT, ResourceNames, fit_name

# 40 characters: the longest name `make rename` accepts (infra/tools/rename.py NAME_MAX).
LONG_PROJECT = "acme-knowledge-platform-for-enterprise-x"
# The domain name OpenSearch accepts: 3-28 characters, a lowercase letter first, then
# lowercase letters, digits and hyphens (CreateDomain's DomainName).
_DOMAIN = re.compile(r"^[a-z][a-z0-9-]{2,27}$")


def test_the_long_project_name_is_forty_characters() -> None:
    assert len(LONG_PROJECT) == 40


@pytest.mark.parametrize("stack", ["staging", "prod", "dev", "pr-1234"])
def test_a_forty_character_project_gets_valid_domain_names(stack: str) -> None:
    # Given a 40-character project name, When the stack's domain is named
    name = domain_name(stack, LONG_PROJECT)
    # Then it is a valid OpenSearch domain name ending in the hash of the whole name
    assert _DOMAIN.match(name), name
    assert name == fit_name(f"{LONG_PROJECT}-{stack}", DOMAIN_NAME_MAX)
    assert re.search(r"-[0-9a-f]{8}$", name)


def test_stacks_that_would_collide_when_cut_get_different_names() -> None:
    # Given the project, whose staging domain was cut to `acme-knowledge-platform-stag`
    project = "acme-knowledge-platform"
    staging, stag = domain_name("staging", project), domain_name("stag", project)
    # Then staging is not cut onto the name a `stag` stack owns (28 characters, it fits)
    assert stag == "acme-knowledge-platform-stag"
    assert staging != stag
    assert len(staging) == DOMAIN_NAME_MAX
    # and the same inputs give the same name on every run
    assert domain_name("staging", project) == staging


def test_a_name_that_fits_is_left_alone() -> None:
    assert domain_name("staging", f"{PROJECT}") == f"{PROJECT}-staging"
    assert fit_name("abc", 3) == "abc"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_role_names_of_a_forty_character_project_keep_the_deploy_role_prefix(stack: str) -> None:
    # Given the longest project name and the program's longest role purpose
    name = role_name(stack, "search-provisioner", LONG_PROJECT)
    # Then the role name fits IAM and keeps `<project>-<stack>-`, which the deploy roles match on
    assert len(name) <= aws_catalog.iam_role_name_max()
    assert name.startswith(f"{LONG_PROJECT}-{stack}-")
    assert name != role_name(stack, "search-provisioner-2", LONG_PROJECT)


def test_a_role_prefix_with_no_room_for_the_hash_is_refused() -> None:
    # Given a project and stack that alone fill IAM's 64 characters
    with pytest.raises(ValueError, match="IAM allows 64"):
        role_name("s" * 20, "api", "p" * 40)


def test_bucket_names_beyond_s3_limit_are_hashed_not_cut() -> None:
    # Given a long stack and account suffix (S3 allows 63 characters)
    names = ResourceNames.for_stack("a" * 20, account_suffix="123456789012")
    other = ResourceNames.for_stack("a" * 19 + "b", account_suffix="123456789012")
    # Then each bucket name fits and they differ
    assert len(names.document_bucket) <= 63
    assert names.document_bucket != other.document_bucket
