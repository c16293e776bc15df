"""Install rlhf_jax: `pip install -e .[test]` (tests) or `pip install -e .` (library + experiments);
add `cuda12` or `cuda13` for an NVIDIA GPU: `pip install -e ".[cuda12]"`."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "ml-collections==1.1.0",
    "chex==0.1.92",
    "tensorflow-cpu==2.21.0",
    "tensorflow-datasets==4.9.10",
    "matplotlib>=3.9",
    "scipy>=1.13",
    "numpy>=1.26",
    "pandas>=2.0",
    "pyarrow>=15",
    "absl-py>=2.0",
    "tensorboardX>=2.6",
    # Annotator agreement and QC (rlhf_jax.labels.qc): Fleiss' kappa and Wilson intervals, Cohen's
    # kappa, Krippendorff's alpha.
    "statsmodels>=0.14",
    "scikit-learn>=1.4",
    "krippendorff>=0.6",
    # The labelling page (experiments/label_server.py): web app, server, WebM/VP9 clips with the
    # ffmpeg binary imageio-ffmpeg ships.
    "starlette>=0.40",
    "uvicorn>=0.30",
    "imageio-ffmpeg>=0.5",
    # LeRobot datasets (rlhf_jax.data.lerobot*): MP4 decode by timestamp and AV1/H.264 encode.
    "av>=14",
]

EXTRAS = {
    # httpx: Starlette's TestClient; selenium drives Debian's chromium + chromium-driver (.ci/run).
    "test": ["pytest>=8", "nbformat>=5.9", "nbclient>=0.10", "ipykernel>=6.29", "httpx>=0.27",
             "selenium>=4.20"],
    "notebooks": ["nbformat>=5.9", "nbclient>=0.10", "ipykernel>=6.29", "jupyter"],
    # A GPU: JAX's own extra for the pinned version, i.e. jax-cuda1x-plugin[with-cuda] (its PJRT
    # plugin and the NVIDIA CUDA, cuDNN and NCCL wheels), so no system CUDA toolkit is needed.
    # cuda12 needs an NVIDIA driver >= 525, cuda13 >= 580.
    "cuda12": ["jax[cuda12]==0.10.2"],
    "cuda13": ["jax[cuda13]==0.10.2"],
}

setup(
    name="rlhf_jax",
    version="0.1.0",
    description="JAX/Flax RLHF scaling experiments on robot-trajectory preference data",
    packages=find_packages(include=["rlhf_jax", "rlhf_jax.*", "experiments", "configs"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    package_data={"experiments": ["label_page/*.html", "label_page/*.js", "label_page/*.css"]},
)
