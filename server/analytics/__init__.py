"""Video analytics: object detection (onnxruntime), tracking, zones and lines, motion, metadata."""
