# How a coremltools issue reports an operator its torch frontend lacks (written for this tutorial).
import coremltools as ct
import torch


class Bins(torch.nn.Module):
    def forward(self, x):
        return torch.bucketize(x, torch.tensor([0.25, 0.5, 0.75])).float()


traced = torch.jit.trace(Bins().eval(), torch.rand(1, 16))
ct.convert(traced, inputs=[ct.TensorType(shape=(1, 16))])
