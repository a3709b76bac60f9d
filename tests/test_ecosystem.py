"""The recipes of docs/ecosystem.md ("Train on an ordered file with your own trainer without losing the
order") do what the page says: the Hugging Face Trainer shuffles by default and keeps the file order with
them, a non-shuffling DistributedSampler / accelerate shard hands out consecutive global batches, and
packing with Dataset.map keeps documents in order."""

import pytest
import torch
from torch.utils.data import BatchSampler, DistributedSampler, SequentialSampler

N, B = 23, 4  # records in the ordered file, per-device batch size


def positions_dataset():
    """Records whose input_ids encode their position in the file (position + 1, four times)."""
    datasets = pytest.importorskip("datasets")
    return datasets.Dataset.from_dict(
        {"input_ids": [[p + 1] * 4 for p in range(N)], "labels": [[p + 1] * 4 for p in range(N)]}
    )


def seen_positions(trainer) -> list[int]:
    return [int(p) - 1 for batch in trainer.get_train_dataloader() for p in batch["input_ids"][:, 0]]


@pytest.fixture(scope="module")
def trainer_parts(tmp_path_factory):
    pytest.importorskip("accelerate")
    from transformers import TrainingArguments, default_data_collator

    from delt_engine.models.presets import build_model

    model = build_model("tiny-test", vocab_size=300, device="cpu")

    def make(cls, **options):
        args = TrainingArguments(
            str(tmp_path_factory.mktemp("trainer")),
            per_device_train_batch_size=B,
            report_to="none",
            use_cpu=True,
            **options,
        )
        return cls(model=model, args=args, train_dataset=positions_dataset(), data_collator=default_data_collator)

    return make


def test_hf_trainer_reshuffles_by_default(trainer_parts):
    from transformers import Trainer

    seen = seen_positions(trainer_parts(Trainer))
    assert sorted(seen) == list(range(N)) and seen != list(range(N))


def test_hf_trainer_keeps_the_order_with_the_sequential_strategy(trainer_parts):
    from transformers import Trainer

    trainer = trainer_parts(Trainer, train_sampling_strategy="sequential")
    assert isinstance(trainer._get_train_sampler(), SequentialSampler)
    assert seen_positions(trainer) == list(range(N))


def test_hf_trainer_keeps_the_order_with_an_overridden_sampler(trainer_parts):
    from transformers import Trainer

    class OrderedTrainer(Trainer):  # the docs' snippet
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    assert seen_positions(trainer_parts(OrderedTrainer)) == list(range(N))


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_sampler_without_shuffle_gives_consecutive_global_batches(world):
    data = list(range(N))
    per_rank = [
        list(BatchSampler(DistributedSampler(data, num_replicas=world, rank=r, shuffle=False), B, False))
        for r in range(world)
    ]
    steps = min(len(batches) for batches in per_rank)
    for step in range(steps):
        seen = sorted(i for r in range(world) for i in per_rank[r][step])
        start = step * B * world
        expected = [i % N for i in range(start, start + len(seen))]  # the tail wraps to even out the ranks
        assert sorted(seen) == sorted(expected)
    assert DistributedSampler(data, num_replicas=2, rank=0).shuffle  # the default shuffles: pass shuffle=False


def test_accelerate_shards_a_sequential_loader_by_consecutive_batches():
    accelerate_data = pytest.importorskip("accelerate.data_loader")
    world = 2
    base = BatchSampler(SequentialSampler(range(N)), B, drop_last=False)
    shards = [list(accelerate_data.BatchSamplerShard(base, num_processes=world, process_index=r)) for r in range(world)]
    for step in range(len(shards[0])):
        global_batch = [i for r in range(world) for i in shards[r][step]]
        start = step * B * world
        assert global_batch == [i % N for i in range(start, start + B * world)]


def test_packing_with_map_keeps_documents_in_order():
    datasets = pytest.importorskip("datasets")
    docs = datasets.Dataset.from_dict({"input_ids": [[d] * (d % 5 + 1) for d in range(N)]})
    block = 8

    def group_texts(batch):
        stream = [t for ids in batch["input_ids"] for t in ids]
        return {"input_ids": [stream[i : i + block] for i in range(0, len(stream) - block + 1, block)]}

    packed = docs.map(group_texts, batched=True, batch_size=1000)
    stream = [t for ids in packed["input_ids"] for t in ids]
    assert stream == sorted(stream)  # documents appear in file order, block after block
    assert torch.tensor(packed["input_ids"]).shape[1] == block
