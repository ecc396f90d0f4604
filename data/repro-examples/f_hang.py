# (f) The model's forward never returns while the exporter traces it.
import torch


class Waiter(torch.nn.Module):
    def forward(self, x):
        while x.sum() < float("inf"):
            x = x + 0
        return x


torch.onnx.export(Waiter(), (torch.ones(2),), "waiter.onnx", dynamo=False)
