"""Every cache a workshop server fills has a size bound with least-recently-used eviction:
datasets (mmvae.data.registry and the app's), coherence classifiers, UMAP embeddings, and the
per-session analysis memo (st.cache_resource(scope="session"))."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from mmvae.data import MultimodalData


def test_dataset_registry_is_lru_bounded():
    from mmvae.data import load_dataset, registry

    registry._cached.cache_clear()
    bound = registry._cached.cache_info().maxsize
    for seed in range(bound + 2):
        load_dataset("toy", seed=seed)
    info = registry._cached.cache_info()
    assert info.currsize == bound <= 8
    hits = info.hits
    load_dataset("toy", seed=bound + 1)  # the most recent one is still there
    assert registry._cached.cache_info().hits == hits + 1
    load_dataset("toy", seed=0)  # the oldest one was dropped
    assert registry._cached.cache_info().hits == hits + 1


def labelled(seed: int) -> MultimodalData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 3, generator=g)
    return MultimodalData({"a": x}, (x[:, 0] > 0).long(), {})


def test_classifier_cache_is_lru_bounded(monkeypatch):
    from mmvae.diagnostics import generation

    monkeypatch.setattr(generation, "_CLASSIFIERS_MAX", 3)
    generation.clear_classifier_cache()
    first = generation.modality_classifiers(labelled(0))["a"]
    second = generation.modality_classifiers(labelled(1))["a"]
    generation.modality_classifiers(labelled(2))
    assert generation.modality_classifiers(labelled(0))["a"] is first  # a hit: now the most recent
    generation.modality_classifiers(labelled(3))  # evicts the least recently used: labelled(1)
    assert len(generation._CLASSIFIERS) == 3
    assert generation.modality_classifiers(labelled(0))["a"] is first
    assert generation.modality_classifiers(labelled(1))["a"] is not second  # trained again
    generation.clear_classifier_cache()


def test_umap_cache_is_lru_bounded(monkeypatch):
    from mmvae.diagnostics import embeddings

    fits = []

    class FakeUMAP:  # stands in for umap-learn (slow to import): counts fits
        def __init__(self, **options):
            pass

        def fit_transform(self, x):
            fits.append(len(x))
            return np.asarray(x)[:, :2]

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    monkeypatch.setattr(embeddings, "_UMAP_CACHE_MAX", 2)
    embeddings.clear_embedding_cache()
    data = [np.random.default_rng(i).normal(size=(5 + i, 3)) for i in range(3)]
    embeddings._umap(data[0], 0, {})
    embeddings._umap(data[1], 0, {})
    embeddings._umap(data[0], 0, {})  # hit: data[0] is now the most recent
    embeddings._umap(data[2], 0, {})  # evicts data[1]
    assert fits == [5, 6, 7] and len(embeddings._UMAP_CACHE) == 2
    embeddings._umap(data[0], 0, {})
    assert fits == [5, 6, 7]
    embeddings._umap(data[1], 0, {})
    assert fits == [5, 6, 7, 6]
    embeddings.clear_embedding_cache()


def test_app_dataset_cache_is_lru_bounded(monkeypatch):
    import mmvae.data
    from app import state

    built = []
    real = mmvae.data.load_dataset

    def counting(name, seed=0, **options):
        built.append(seed)
        return real(name, seed=seed, **options)

    monkeypatch.setattr(mmvae.data, "load_dataset", counting)
    state._dataset.clear()
    n = state.DATASET_ENTRIES
    for seed in range(n + 1):
        state.dataset("toy", seed)
    state.dataset("toy", n)  # the most recent: cached
    assert built == list(range(n + 1))
    state.dataset("toy", 0)  # the least recently used was dropped: built again
    assert built == list(range(n + 1)) + [0]
    state._dataset.clear()


def _memo_script():
    import uuid

    import streamlit as st

    from app import state

    calls = st.session_state.setdefault("calls", [])
    name = uuid.uuid4().hex  # AppTest gives every test the same session id: keep this test's keys apart
    for i in range(state.MEMO_ENTRIES + 1):
        state.memo(name, None, (i,), lambda i=i: calls.append(i) or i)
    state.memo(name, None, (state.MEMO_ENTRIES,), lambda: calls.append("recent again"))
    state.memo(name, None, (0,), lambda: calls.append("first again"))


def test_session_memo_is_lru_bounded():
    """(That sessions do not share it is checked in the browser, tests/test_browser_students.py:
    AppTest runs every test under one session id.)"""
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    from app import state

    at = AppTest.from_function(_memo_script, default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["calls"] == list(range(state.MEMO_ENTRIES + 1)) + ["first again"]
