# (c) Tracing: the model returns an object the tracer cannot represent.
import torch


class Boxed:
    def __init__(self, tensor):
        self.tensor = tensor


class Detector(torch.nn.Module):
    def forward(self, x):
        return Boxed(x.sigmoid())


torch.onnx.export(Detector(), (torch.randn(1, 3),), "detector.onnx", dynamo=False)
