"""Train a zoo model on the bundled digits, score the test set, sample, save and load.

    python examples/train_zoo_model.py
"""

from __future__ import annotations

import ppgen
from ppgen.data import load_digits
from ppgen.models import VAE

digits = load_digits("categorical")  # train/val/test = [:1000], [1000:1350], [1350:]
vae = VAE.for_data(digits.info)  # categorical decoder over the 17 grey levels
history = ppgen.fit(vae, digits.train, digits.val, epochs=40)  # the full recipe: omit epochs
print(history)

nll = -ppgen.log_likelihood(vae, digits.test, num_particles=200).mean()
print(f"test NLL (IWAE-200): {nll:.2f} nats per image")
images = vae.sample(16)  # [16, 64] integer levels
vae.save("vae-digits.pt")
again = ppgen.load("vae-digits.pt")
print("reloaded:", type(again).__name__, again.get_config())
