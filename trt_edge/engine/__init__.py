"""TensorRT engines: the build plan (pure), the builder (lazy TensorRT), the manifest, trtexec rendering."""
