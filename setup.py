"""Packaging for textmtl, driven by settings.ini (the nbdev 2 layout).

Kept free of `pkg_resources` (removed from current setuptools); requirement strings are parsed with
`packaging` so that a malformed pin fails here, loudly, instead of at install time.
"""
from configparser import ConfigParser
from packaging.requirements import Requirement
import setuptools

assert setuptools.__version__ >= "36.2"

config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

expected = "version description keywords author author_email license status min_python lib_name user".split()
missing = [o for o in expected if o not in cfg]
if missing:
    raise SystemExit(f"settings.ini is missing the keys: {missing}")

# settings.ini's nbdev license names -> SPDX expressions (PEP 639; current setuptools deprecates license classifiers)
licenses = {"apache2": "Apache-2.0", "mit": "MIT"}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable", "6 - Mature", "7 - Inactive"]
py_versions = "3.10 3.11 3.12 3.13".split()


def parse_reqs(key):
    reqs = cfg.get(key, "").split()
    for r in reqs:
        Requirement(r)  # raises packaging.requirements.InvalidRequirement on a bad pin
    return reqs


requirements = parse_reqs("requirements")
dev_requirements = parse_reqs("dev_requirements")
lic = licenses.get(cfg["license"].lower(), cfg["license"])
min_python = cfg["min_python"]

setuptools.setup(
    name=cfg["lib_name"],
    license=lic,
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
    ]
    + ["Programming Language :: Python :: " + o for o in py_versions[py_versions.index(min_python):]],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=["textmtl", "textmtl.*"]),
    include_package_data=True,
    install_requires=requirements,
    extras_require={"dev": dev_requirements},
    dependency_links=cfg.get("dep_links", "").split(),
    python_requires=">=" + min_python,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f"{cfg.get('lib_path')}={cfg.get('lib_path')}._modidx:d"],
    },
    version=cfg["version"],
    description=cfg["description"],
    keywords=cfg["keywords"],
    author=cfg["author"],
    author_email=cfg["author_email"],
)
