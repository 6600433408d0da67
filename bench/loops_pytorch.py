"""PyTorch's minimal loop for the bench: the chapter's model trained by a plain PyTorch loop.

``Minimal`` trains a model of the chapter (built by worker.py from the notebook's own cells)
with eager steps, PyTorch's normal mode: the model's forward, loss and optimizer, no
``d2l.Trainer``. With ``shuffle`` each epoch draws a fresh permutation and gathers every
minibatch with ``index_select``; without it the batches are views cut once, in order.
"""

import torch


def versions():
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def matmul(m, k, n):
    """A call that multiplies an (m, k) by a (k, n) float32 matrix (synchronously, on the CPU)."""
    a, b = torch.rand(m, k), torch.rand(k, n)
    return lambda: torch.mm(a, b)


class Minimal:
    def __init__(self, model, arrays, batch_size, shuffle, rng):
        self.model, self.batch_size, self.shuffle, self.rng = model, batch_size, shuffle, rng
        self.train, self.val = (
            (torch.from_numpy(images), torch.from_numpy(labels)) for images, labels in (arrays["train"], arrays["val"])
        )
        self.prebatched = list(zip(*(t.split(batch_size) for t in self.train)))
        self.val_batches = list(zip(*(t.split(batch_size) for t in self.val)))
        with torch.no_grad():
            model(self.val_batches[0][0])  # materialises lazy layers before the optimizer lists them
        self.optim = model.configure_optimizers()

    def train_batches(self):
        if not self.shuffle:
            return self.prebatched
        order = torch.from_numpy(self.rng.permutation(len(self.train[0])))
        return ([t.index_select(0, indices) for t in self.train] for indices in order.split(self.batch_size))

    def epoch(self):
        model, train_losses, val_losses, val_accs = self.model, [], [], []
        for X, y in self.train_batches():
            loss = model.loss(model(X), y)
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
            train_losses.append(loss.detach())
        with torch.no_grad():
            for X, y in self.val_batches:
                Y_hat = model(X)
                val_losses.append(model.loss(Y_hat, y))
                val_accs.append((Y_hat.argmax(dim=1) == y).float().mean())
        return {
            "train_loss": float(torch.stack(train_losses).mean()),
            "val_loss": float(torch.stack(val_losses).mean()),
            "val_acc": float(torch.stack(val_accs).mean()),
        }
