# (a) A small CNN exported with the TorchScript exporter: ONNX Runtime agrees with PyTorch.
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


torch.onnx.export(Net().eval(), (torch.randn(2, 3, 8, 8),), "net.onnx", dynamo=False, opset_version=17)
print("exported")
