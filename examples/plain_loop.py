"""A plain PyTorch training loop with the optiscope Monitor: three added lines, marked (+).

Run: .venv/bin/python examples/plain_loop.py [OUT_DIR]
"""

import sys

import torch
from sklearn.datasets import load_digits

import optiscope


def main(out: str = "runs/plain-loop") -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    monitor = optiscope.Monitor(model, optimizer, out=out)  # (+)
    for _epoch in range(3):
        for idx in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            monitor.step(loss)  # (+)
            optimizer.step()
    monitor.close()  # (+)

    records = optiscope.read_records(out)
    steps, losses = records.series("loss")
    _, ratios = records.series("update_ratio")
    print(f"{len(steps)} steps recorded in {out}/records.jsonl")
    print(
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; median update/parameter ratio "
        f"{sorted(ratios)[len(ratios) // 2]:.2e}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
