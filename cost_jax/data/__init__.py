"""Video datasets (TFDS builders) and the tf.data input pipeline."""
