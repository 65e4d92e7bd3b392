"""Config: dataclass defaults, YAML layers holding only changes, dotted overrides, errors that help."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import re

import pytest

from ssgan import config as C


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------- defaults
def test_defaults_build_and_validate():
    cfg = C.build()
    assert cfg == C.Config()
    assert cfg.data.dataset == "mnist" and cfg.data.labels is None  # None: the dataset's own (MNIST: 100)
    assert cfg.data.labels_per_class is None and cfg.data.labeled_rate is None
    # The settings with measured results (Salimans et al.'s MNIST model), so a bare `ssgan train` works.
    assert (cfg.method.name, cfg.model.net, cfg.optim.eps, cfg.train.ema) == ("fm", "auto", 1e-4, 0.999)
    assert cfg.optim.lr is None and cfg.method.fm_distance is None  # the chosen net's, filled in by settle()
    assert cfg.train.batch_size == 100


def test_every_field_has_a_default_and_a_reason():
    rows = C.help_lines()
    assert [r[0] for r in rows] == C.all_keys()
    assert len(rows) == len(set(r[0] for r in rows)) > 30
    for key, default, help_ in rows:
        assert help_.strip(), key
    for section in C.SECTIONS:
        for f in dataclasses.fields(C.SECTIONS[section]):
            assert f.default is not dataclasses.MISSING, f"{section}.{f.name} has no default"


def test_every_default_passes_its_own_type_check():
    for key in C.all_keys():
        section, _, name = key.partition(".")
        value = getattr(getattr(C.Config(), section), name)
        assert C.coerce(key, value) == value, key


def test_to_dict_from_dict_round_trip():
    cfg = C.build(overrides={"data.labeled_rate": "0.05", "optim.lr": "1e-3", "train.ema": "0.999"})
    again = C.from_dict(cfg.to_dict())
    assert again == cfg and again.data.labels is None


# ----------------------------------------------------------------------------------------- YAML layers
def test_yaml_layer_changes_only_what_it_names(tmp_path):
    path = write(tmp_path, "a.yaml", "optim:\n  lr: 1.0e-3\ntrain:\n  epochs: 3\n")
    cfg = C.build([str(path)])
    expected = C.Config()
    expected.optim.lr, expected.train.epochs = 1e-3, 3
    assert cfg == expected


def test_later_layers_win(tmp_path):
    a = write(tmp_path, "a.yaml", "optim: {lr: 1.0e-3, beta1: 0.9}\n")
    b = write(tmp_path, "b.yaml", "optim: {lr: 5.0e-4}\n")
    cfg = C.build([str(a), str(b)], {"train.epochs": "7"})
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.train.epochs) == (5e-4, 0.9, 7)
    cfg = C.build([str(a), str(b)], {"optim.lr": "2e-3"})
    assert cfg.optim.lr == 2e-3


def test_yaml_scientific_notation_without_a_dot(tmp_path):
    # PyYAML reads 3e-4 as a string (YAML 1.1 wants 3.0e-4); it must still mean the float
    cfg = C.build([str(write(tmp_path, "a.yaml", "optim:\n  lr: 3e-4\n"))])
    assert cfg.optim.lr == 3e-4 and isinstance(cfg.optim.lr, float)


def test_empty_yaml_is_no_change(tmp_path):
    assert C.build([str(write(tmp_path, "empty.yaml", "# nothing\n"))]) == C.Config()


def test_repository_configs_load():
    paths = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert paths
    for path in paths:
        C.build([str(path)])  # every shipped config is valid


# ------------------------------------------------------------------------------------------- overrides
@pytest.mark.parametrize("key, text, value", [
    ("optim.lr", "3e-4", 3e-4), ("train.epochs", "5", 5), ("data.download", "false", False),
    ("data.download", "yes", True), ("train.ema", "none", None), ("train.ema", "0.99", 0.99),
    ("data.labels", "null", None), ("data.dataset", "synthetic", "synthetic"), ("model.width", "1", 1.0),
    ("optim.decay", "linear", "linear"), ("data.root", "~", None),
])
def test_string_overrides_are_parsed_by_type(key, text, value):
    got = C.coerce(key, text)
    assert got == value and type(got) is type(value)


def test_int_given_to_a_float_field_becomes_float():
    assert C.build(overrides={"optim.lr": 1}).optim.lr == 1.0
    assert isinstance(C.build(overrides={"optim.lr": 1}).optim.lr, float)


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(C.ConfigError) as info:
        C.build(overrides={"optim.lrr": "1"})
    msg = str(info.value)
    assert "'optim.lrr'" in msg and "did you mean optim.lr" in msg and "command line" in msg


@pytest.mark.parametrize("key, near", [("optm.lr", "optim.lr"), ("data.label", "data.labels"),
                                       ("train.epoch", "train.epochs"),
                                       ("data.labled_rate", "data.labeled_rate")])
def test_typos_suggest_the_intended_key(key, near):
    with pytest.raises(C.ConfigError, match=rf"unknown config key '{key}'.*{near}"):
        C.coerce(key, "1")


def test_unrelated_key_lists_valid_keys():
    with pytest.raises(C.ConfigError, match="valid keys: data.dataset"):
        C.coerce("zzzzzz", "1")


@pytest.mark.parametrize("key, value", [
    ("train.epochs", "abc"), ("train.epochs", "2.5"), ("train.epochs", 2.5), ("data.labels", 1.5),
    ("optim.lr", "fast"), ("optim.lr", True), ("data.download", "maybe"), ("data.download", 1),
    ("train.batch_size", None), ("data.dataset", None), ("data.dataset", ["mnist"]), ("train.batch_size", True),
])
def test_wrong_types_name_the_key(key, value):
    with pytest.raises(C.ConfigError) as info:
        C.build(overrides={key: value})
    assert key in str(info.value)


def test_choices_are_enforced():
    with pytest.raises(C.ConfigError, match=r"optim.decay='cosine' is not one of none, linear"):
        C.build(overrides={"optim.decay": "cosine"})
    with pytest.raises(C.ConfigError, match="train.amp='fp16' is not one of none, bf16"):
        C.build(overrides={"train.amp": "fp16"})
    assert C.build(overrides={"method.fm_distance": "l1"}).method.fm_distance == "l1"


def test_a_bad_value_changes_nothing():
    cfg = C.Config()
    with pytest.raises(C.ConfigError):
        C.apply(cfg, {"optim.lr": "1e-3", "train.epochs": "x"})
    assert cfg == C.Config()  # all checked before any is applied


def test_g_steps_below_one_is_refused_naming_the_key():
    with pytest.raises(C.ConfigError, match=r"optim.g_steps=0 must be >= 1"):
        C.build(overrides={"optim.g_steps": 0})


@pytest.mark.parametrize("key, value", [("model.layer_noise", -0.1), ("model.input_shift", -1),
                                        ("model.g_dropout", 1.0), ("method.kplus1_consistency", -1.0),
                                        ("method.pseudo_threshold", 1.0)])
def test_the_regularisers_refuse_values_out_of_range_naming_the_key(key, value):
    with pytest.raises(C.ConfigError, match=re.escape(key)):
        C.build(overrides={key: value})


# ------------------------------------------------------------------------------------------ label keys
def test_labeled_rate_in_a_later_layer_clears_labels(tmp_path):
    cfg = C.build(overrides={"data.labeled_rate": "0.1"})
    assert (cfg.data.labels, cfg.data.labels_per_class, cfg.data.labeled_rate) == (None, None, 0.1)


def test_yaml_label_choice_replaced_on_the_command_line(tmp_path):
    path = write(tmp_path, "a.yaml", "data:\n  labels_per_class: 5\n")
    cfg = C.build([str(path)])
    assert (cfg.data.labels, cfg.data.labels_per_class) == (None, 5)
    cfg = C.build([str(path)], {"data.labels": "200"})
    assert (cfg.data.labels, cfg.data.labels_per_class, cfg.data.labeled_rate) == (200, None, None)


def test_two_label_keys_in_one_layer_fail():
    with pytest.raises(C.ConfigError, match="give the labels one way"):
        C.build(overrides={"data.labels": "100", "data.labeled_rate": "0.1"})


def test_two_label_keys_in_one_yaml_fail(tmp_path):
    path = write(tmp_path, "a.yaml", "data: {labels: 100, labels_per_class: 10}\n")
    with pytest.raises(C.ConfigError, match="give the labels one way"):
        C.build([str(path)])


def test_unrelated_layer_keeps_the_label_choice(tmp_path):
    cfg = C.build([str(write(tmp_path, "a.yaml", "data: {labeled_rate: 0.2}\n"))], {"optim.lr": "1e-3"})
    assert (cfg.data.labels, cfg.data.labeled_rate) == (None, 0.2)


# ------------------------------------------------------------------------------------- validate
@pytest.mark.parametrize("changes, phrase", [
    ({"data.image_size": "4"}, "data.image_size=4"), ({"data.val_size": "-1"}, "data.val_size=-1"),
    ({"train.epochs": "0"}, "train.epochs"), ({"train.batch_size": "0"}, "train.batch_size"),
    ({"train.ema": "1.5"}, "train.ema=1.5"), ({"model.dropout": "1.0"}, "model.dropout=1.0"),
    ({"model.width": "0"}, "model.width=0"), ({"optim.g_beta1": "1.5"}, "optim.g_beta1=1.5"),
])
def test_cross_field_checks(changes, phrase):
    with pytest.raises(C.ConfigError, match=phrase.replace(".", r"\.")):
        C.build(overrides=changes)


# -------------------------------------------------------------------------------------- bad YAML files
def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(C.ConfigError, match=rf"config file {path} does not exist"):
        C.build([str(path)])


def test_invalid_yaml_is_named(tmp_path):
    path = write(tmp_path, "broken.yaml", "optim:\n  lr: [1, 2\n")
    with pytest.raises(C.ConfigError, match=rf"config file {path} is not valid YAML"):
        C.build([str(path)])


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just text\n", "str"), ("3\n", "int")])
def test_non_mapping_yaml_is_named(tmp_path, text, kind):
    path = write(tmp_path, "list.yaml", text)
    with pytest.raises(C.ConfigError, match=rf"{path} must hold a mapping of sections, got {kind}"):
        C.build([str(path)])


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    path = write(tmp_path, "typo.yaml", "optim:\n  lrr: 0.1\n")
    with pytest.raises(C.ConfigError) as info:
        C.build([str(path)])
    msg = str(info.value)
    assert str(path) in msg and "optim.lrr" in msg and "optim.lr" in msg


def test_unknown_section_in_yaml(tmp_path):
    path = write(tmp_path, "typo.yaml", "optm:\n  lr: 0.1\n")
    with pytest.raises(C.ConfigError, match=rf"{path}.*'optm'.*optim"):
        C.build([str(path)])


def test_section_given_a_value(tmp_path):
    path = write(tmp_path, "flat.yaml", "optim: 0.1\n")
    with pytest.raises(C.ConfigError, match=rf"{path}.*'optim'"):
        C.build([str(path)])


def test_wrong_type_in_yaml_names_file_and_key(tmp_path):
    path = write(tmp_path, "types.yaml", "train:\n  epochs: ten\n")
    with pytest.raises(C.ConfigError, match=rf"{path}.*train.epochs='ten'.*expected int"):
        C.build([str(path)])
