"""The recipe's training step in TensorFlow beside ssgan's, on this machine: issue #16's peer figure
("recipe GFLOP/s against the TF code with oneDNN on").

The recipe (`configs/seed.yaml`) comes from a TensorFlow 1 notebook. This script builds that graph
again from its description, in TF 1.x graph mode (`tf.compat.v1`): D is four convolutions (128,
256 and 512 channels, 4x4, strides 2, 2 and 4, then 1,024 channels 3x3 valid), LeakyReLU, batch
norm on the middle two, dropout, global average pooling and a dense K+1 head; G mirrors it with
transposed convolutions from a 1x1x100 code. One iteration is what the notebook runs per batch of
128 images at 64x64: the D update, then the G update, two session runs on the same feed (each
recomputes the forward passes), Adam 2e-4. The notebook's extra evaluation runs per batch and its
per-step image resize are left out. FLOPs come from TensorFlow's profiler, each update counted in
a graph that holds only it, so each side is counted by its own framework.

ssgan's side is throughput.py's recipe row (`kplus1` / dcgan64, batch 128: D sees a labeled and an
unlabeled batch of 128 and a generated one). The two sides run in child processes, one after the
other, `--rounds` times, so that neither framework's thread pools touch the other's timings.
TensorFlow need not be installed where ssgan is: `--tf-python` names an interpreter that has it.

    python benchmarks/tf_recipe_step.py --tf-python /path/to/tf-venv/bin/python \\
        --out benchmarks/results/tf_recipe_step.json

TensorFlow's oneDNN paths are switched on (`TF_ENABLE_ONEDNN_OPTS=1`); on AMD CPUs its default is
off. `--onednn 0` times the default instead. Times are medians after warm-up; compare the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

TF_CHILD = r"""
import json, statistics, sys, time
import numpy as np
import tensorflow as tf
v1 = tf.compat.v1
v1.disable_eager_execution()
steps, warmup = int(sys.argv[1]), int(sys.argv[2])
B, K, S, LATENT = 128, 10, 64, 100
lrelu = tf.nn.leaky_relu

# raw ops (tf.compat.v1.layers needs Keras 2, which TF 2.16+ no longer ships): the kernels the layers call
def param(name, shape, zero=False):
    init = v1.zeros_initializer() if zero else v1.glorot_uniform_initializer()
    return v1.get_variable(name, shape, initializer=init)

def conv(x, cout, k, s, pad, name):
    w = param(name + "/w", [k, k, x.shape[-1], cout])
    return tf.nn.bias_add(tf.nn.conv2d(x, w, [1, s, s, 1], pad), param(name + "/b", [cout], True))

def deconv(x, cout, k, s, pad, hw, name):
    w = param(name + "/w", [k, k, cout, x.shape[-1]])
    y = tf.nn.conv2d_transpose(x, w, [B, hw, hw, cout], [1, s, s, 1], pad)
    return tf.nn.bias_add(y, param(name + "/b", [cout], True))

def bn(x, name):  # training mode, as tf.layers.batch_normalization(training=True): fused, moving averages
    c = x.shape[-1]
    gamma = v1.get_variable(name + "/g", [c], initializer=v1.ones_initializer())
    y, mean, var = v1.nn.fused_batch_norm(x, gamma, param(name + "/b", [c], True), is_training=True)
    for stat, value in ((v1.get_variable(name + "/mm", [c], trainable=False, initializer=v1.zeros_initializer()), mean),
                        (v1.get_variable(name + "/mv", [c], trainable=False, initializer=v1.ones_initializer()), var)):
        v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign(stat, 0.99 * stat + 0.01 * value))
    return y

def D(x, keep, reuse):
    with v1.variable_scope("D", reuse=reuse):
        h = v1.nn.dropout(lrelu(conv(x, 128, 4, 2, "SAME", "c1")), keep_prob=keep)
        h = v1.nn.dropout(bn(lrelu(conv(h, 256, 4, 2, "SAME", "c2")), "b2"), keep_prob=keep)
        h = v1.nn.dropout(bn(lrelu(conv(h, 512, 4, 4, "SAME", "c3")), "b3"), keep_prob=keep)
        feat = tf.reduce_mean(lrelu(conv(h, 1024, 3, 1, "VALID", "c4")), axis=[1, 2])
        return feat, tf.matmul(feat, param("head/w", [1024, K + 1])) + param("head/b", [K + 1], True)

def G(z, keep):
    with v1.variable_scope("G"):
        h = v1.nn.dropout(bn(tf.nn.relu(deconv(z, 512, 4, 1, "VALID", 4, "t1")), "b1"), keep_prob=keep)
        h = v1.nn.dropout(bn(tf.nn.relu(deconv(h, 256, 4, 4, "SAME", 16, "t2")), "b2"), keep_prob=keep)
        h = v1.nn.dropout(bn(tf.nn.relu(deconv(h, 128, 4, 2, "SAME", 32, "t3")), "b3"), keep_prob=keep)
        return tf.tanh(deconv(h, 1, 4, 2, "SAME", 64, "t4"))

def build(train_d, train_g):
    # the notebook's graph, with the D update, the G update or both
    x = v1.placeholder(tf.float32, [B, S, S, 1])
    z = v1.placeholder(tf.float32, [B, 1, 1, LATENT])
    y = v1.placeholder(tf.float32, [B, K])
    mask = v1.placeholder(tf.float32, [B])
    keep = v1.placeholder(tf.float32, [])
    fake = G(z, keep)
    f_real, l_real = D(x, keep, False)
    f_fake, l_fake = D(fake, keep, True)
    # the notebook's losses: class cross-entropy on the masked labels, real/fake on logit 0, feature matching
    ce = v1.nn.softmax_cross_entropy_with_logits_v2(labels=tf.concat([tf.zeros([B, 1]), y], 1), logits=l_real)
    sce = lambda logits, target: tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(logits=logits, labels=tf.fill(tf.shape(logits), target)))
    d_loss = tf.reduce_sum(ce * mask) / tf.reduce_sum(mask) + sce(l_real[:, 0], 0.0) + sce(l_fake[:, 0], 1.0)
    g_loss = sce(l_fake[:, 0], 0.0) + tf.reduce_mean(tf.square(tf.reduce_mean(f_real, 0) - tf.reduce_mean(f_fake, 0)))
    ops = []
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
        var = v1.trainable_variables()
        if train_d:
            ops.append(v1.train.AdamOptimizer(2e-4, 0.5).minimize(d_loss, var_list=[v for v in var if v.name.startswith("D/")]))
        if train_g:
            ops.append(v1.train.AdamOptimizer(2e-4, 0.5).minimize(g_loss, var_list=[v for v in var if v.name.startswith("G/")]))
    rng = np.random.default_rng(0)
    m = np.zeros(B, np.float32); m[: B // 5] = 1
    feed = {x: rng.uniform(-1, 1, (B, S, S, 1)).astype(np.float32),
            z: rng.normal(size=(B, 1, 1, LATENT)).astype(np.float32),
            y: np.eye(K, dtype=np.float32)[rng.integers(0, K, B)], mask: m, keep: 0.7}
    return ops, feed

# FLOPs: TF's profiler counts a whole graph, not one session run, so each update is counted in a graph
# that holds only it (every op there runs in that update, forward passes included)
flops = 0
for which in ((True, False), (False, True)):
    with tf.Graph().as_default() as graph:
        build(*which)
        flops += v1.profiler.profile(graph, options=v1.profiler.ProfileOptionBuilder.float_operation()).total_float_ops
with tf.Graph().as_default():
    (d_opt, g_opt), feed = build(True, True)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        def step():  # as the notebook: two runs on one feed
            sess.run(d_opt, feed)
            sess.run(g_opt, feed)
        for _ in range(warmup):
            step()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
print(json.dumps({"sec": statistics.median(times), "times": times, "gflop": flops / 1e9, "tf": tf.__version__}))
"""

TORCH_CHILD = r"""
import json, statistics, sys, time
import torch
from torch.utils.flop_counter import FlopCounterMode
sys.path.insert(0, sys.argv[3])
from throughput import make_parts
from ssgan.training import host
from ssgan.training.step import d_step, g_step
steps, warmup = int(sys.argv[1]), int(sys.argv[2])
host.keep_freed_memory()  # as training on the CPU does
parts, (xl, yl, xu, xg) = make_parts("kplus1", "dcgan64", 64, 1.0, 128, "none", 2e-4)
step = lambda: d_step(parts, xl, yl, xu) + g_step(parts, xg)
with FlopCounterMode(display=False) as counter:
    step()
for _ in range(warmup):
    step()
times = []
for _ in range(steps):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
print(json.dumps({"sec": statistics.median(times), "times": times, "gflop": counter.get_total_flops() / 1e9,
                  "torch": torch.__version__}))
"""


def child(python: str, code: str, args: list[str], env: dict) -> dict:
    out = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{python}: the child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tf-python", default=sys.executable, help="a Python interpreter with TensorFlow")
    parser.add_argument("--onednn", type=int, default=1, choices=(0, 1), help="TF_ENABLE_ONEDNN_OPTS for TF")
    parser.add_argument("--rounds", type=int, default=2, help="TF then ssgan, this many times")
    parser.add_argument("--steps", type=int, default=3, help="timed iterations per child")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args()
    from ssgan.files import atomic_write_text
    from ssgan.tracking import cpu_model
    tf_env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": str(args.onednn), "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; TF oneDNN {'on' if args.onednn else 'default'}",
          flush=True)
    rounds = []
    for r in range(args.rounds):
        tf = child(args.tf_python, TF_CHILD, [str(args.steps), str(args.warmup)], tf_env)
        pt = child(sys.executable, TORCH_CHILD, [str(args.steps), str(args.warmup), str(HERE)], dict(os.environ))
        rounds.append({"tf": tf, "ssgan": pt})
        print(f"round {r + 1}: TF {tf['sec']:.2f} s/it ({tf['gflop']:.0f} GFLOP, {tf['gflop'] / tf['sec']:.1f} GFLOP/s)"
              f"  ssgan {pt['sec']:.2f} s/it ({pt['gflop']:.0f} GFLOP, {pt['gflop'] / pt['sec']:.1f} GFLOP/s)",
              flush=True)
    tf_sec = statistics.median(t for r in rounds for t in r["tf"]["times"])
    pt_sec = statistics.median(t for r in rounds for t in r["ssgan"]["times"])
    tf_rate, pt_rate = rounds[0]["tf"]["gflop"] / tf_sec, rounds[0]["ssgan"]["gflop"] / pt_sec
    print(f"median over rounds: TF {tf_sec:.2f} s/it, {tf_rate:.1f} GFLOP/s; ssgan {pt_sec:.2f} s/it, "
          f"{pt_rate:.1f} GFLOP/s; ssgan / TF per FLOP {pt_rate / tf_rate:.2f}x, per step {tf_sec / pt_sec:.2f}x")
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({
            "cpu_model": cpu_model(), "cpus": os.cpu_count(), "tf_onednn": args.onednn, "rounds": rounds,
            "tf_sec": tf_sec, "ssgan_sec": pt_sec, "tf_gflops": tf_rate, "ssgan_gflops": pt_rate,
            "ssgan_over_tf_per_flop": pt_rate / tf_rate}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
