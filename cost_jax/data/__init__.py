"""Video datasets (TFDS builders, the catalog of built ones) and the input pipelines:
tf.data (`pipeline`) and Grain (`grain_pipeline`) behind `input`."""
