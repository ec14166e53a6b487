"""Packaging glue that pyproject.toml cannot express: ship the top-level alembic `migrations/` folder inside
the wheel as `ocpi_hub.migrations`, so that `pip install . && ocpi-hub serve` can migrate without a source tree."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ocpi_hub*"]), "ocpi_hub.migrations", "ocpi_hub.migrations.versions"],
    package_dir={"ocpi_hub.migrations": "migrations"},
    package_data={"ocpi_hub": ["py.typed"], "ocpi_hub.migrations": ["*.mako"]},
)
