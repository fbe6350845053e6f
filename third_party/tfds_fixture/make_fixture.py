"""Write the tiny prepared TFDS datasets that jnas's offline TFDS test reads.

They are *synthetic*: each image is a deterministic pattern of its index and label (see
``pattern``), so the test can recompute every pixel and check that decoding is exact. The
builders reuse the registered ``cifar10`` and ``mnist`` feature specs and versions, so the
folders are laid out exactly like real prepared copies (``<dir>/cifar10/3.0.2/...``).

Writing a TFDS dataset needs tensorflow (reading it does not), so run this once in a
separate environment:

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tensorflow-datasets array_record pillow
    /tmp/tfvenv/bin/python third_party/tfds_fixture/make_fixture.py third_party/tfds_fixture/tfds
"""

import sys

import numpy as np
import tensorflow_datasets as tfds

SIZES = {"train": 12, "test": 6}


def pattern(index: int, label: int, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 image whose pixels are (7 * index + 31 * label + 3 * row + 5 * col + 11 * channel) mod 256."""
    r, c, ch = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
    return ((7 * index + 31 * label + 3 * r + 5 * c + 11 * ch) % 256).astype(np.uint8)


def tiny(base, shape, num_classes):
    class Tiny(base, skip_registration=True):
        name = base.name

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in SIZES}

        def _generate_examples(self, split):
            for i in range(SIZES[split]):
                label = (i * 3 + (split == "test")) % num_classes
                example = {"image": pattern(i, label, shape), "label": label}
                if "id" in self.info.features:
                    example["id"] = f"{split}_{i:05d}"
                yield i, example

    return Tiny


if __name__ == "__main__":
    out = sys.argv[1]
    for base, shape, k in [
        (tfds.image_classification.Cifar10, (32, 32, 3), 10),
        (tfds.image_classification.MNIST, (28, 28, 1), 10),
    ]:
        builder = tiny(base, shape, k)(data_dir=out, file_format="array_record")
        builder.download_and_prepare()
        print(builder.info.full_name, {s: builder.info.splits[s].num_examples for s in SIZES})
