"""The OpenAPI document is complete: bodies with examples, errors and security documented."""

from __future__ import annotations

from typing import Any

from api.app import create_app
from api.settings import ApiSettings
from dashboards.reports import render as render_report


def schema() -> dict[str, Any]:
    return create_app(ApiSettings(), render_report=render_report).openapi()


def test_every_request_body_has_an_example() -> None:
    doc = schema()
    components = doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            assert components[ref].get("examples"), f"{method.upper()} {path}: {ref}"


def test_protected_operations_document_auth_and_errors() -> None:
    doc = schema()
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path == "/health":
                assert "security" not in operation
                continue
            assert operation.get("security"), f"{method.upper()} {path} has no security"
            for code in ("401", "403", "422"):
                assert code in operation["responses"], f"{method.upper()} {path}: {code}"


def test_units_are_named() -> None:
    """Numeric fields of the risk answers say their unit in the name or the description."""
    components = schema()["components"]["schemas"]
    for name in ("TariffPublic", "SensorPublic", "WorkplacePublic", "EnterpriseRiskPublic"):
        for field, spec in components[name]["properties"].items():
            numeric = spec.get("type") in ("number",) or any(
                option.get("type") == "number" for option in spec.get("anyOf", [])
            )
            if numeric:
                text = field + " " + spec.get("description", "")
                assert any(
                    u in text
                    for u in (
                        "pct",
                        "%",
                        "_s",
                        "unit",
                        "persons",
                        "ПР",
                        "fraction",
                        "dimensionless",
                    )
                ), f"{name}.{field} does not name its unit"
