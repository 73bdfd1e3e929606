"""What ESP-DL will allocate for an .espdl on a chip, before flashing (`yolo11-pose inspect --memory`).

Activations are laid out by a re-implementation of ESP-DL 3.3.9's memory planner, `dl::MemoryManagerGreedy`
(esp-dl/dl/model/src/dl_memory_manager_greedy.cpp and dl_memory_manager.cpp), the only one ESP-DL has
(`MEMORY_MANAGER_GREEDY`, the default of `dl::Model`): tensors in execution order, each one's life from the node that
makes it to the last node that reads it (graph outputs live to the end), in-place modules (ESP-DL's
MODULE_INPLACE_CHANGED/UNCHANGED_BUFFER) sharing their input's buffer when it is large enough and not a graph output,
first fit in a free list sorted by size, chunks aligned to 16 bytes, the block grown at its end when nothing fits. The
planner's result is one block: `YOLO11Pose` builds `dl::Model(source, location)` with `max_internal_size = 0`, so
with CONFIG_SPIRAM the whole block is in PSRAM (`simulate()`), without it in internal RAM.

Assumptions, stated in the output: ESP-DL runs the nodes in the file's order (its `topological_sort()` is in a
closed library; ESP-PPQ writes the nodes sorted), and output shapes are the file's value_info shapes (what
`Module::get_output_shape()` computes for them). Parameters: `param_copy = true` (dl::Model's default, which
YOLO11Pose keeps) copies every constant from flash into PSRAM, each allocation 16-byte aligned; from the SD card
the whole file is read into PSRAM first. Test values (`--export-test-values`) stay in the file; `dl::Model::test()`
holds the test input and outputs as tensors while it runs. ESP-DL's own objects (modules, tensor headers, the
loader's maps; a few tens of KB of internal RAM) are not predicted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ALIGN = 16  # dl::MemoryManagerBase's default alignment, and heap_caps_aligned_alloc's for parameters
PLANNER = "dl::MemoryManagerGreedy (ESP-DL 3.3.9, dl/model/src/dl_memory_manager_greedy.cpp)"
DTYPE_BYTES = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "float16": 2, "float": 4, "float32": 4,
               "int32": 4, "uint32": 4, "double": 8, "int64": 8, "uint64": 8}

# In-place modules, from each module's deserialize() in ESP-DL 3.3.9 (dl/module/include/dl_module_*.hpp). Every
# other module (Conv, Concat, Slice, Resize, MatMul, Mul, Sub, Softmax, QuantizeLinear, ...) writes a new buffer.
INPLACE_UNCHANGED = {"Flatten", "Identity", "Reshape", "Squeeze", "Unsqueeze"}
INPLACE_CHANGED = {"Add", "And", "Clip", "Elu", "Equal", "Exp", "Greater", "GreaterOrEqual", "HardSigmoid",
                   "HardSwish", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LpNormalization",
                   "Max", "Min", "Mod", "Neg", "Not", "Or", "PRelu", "ReduceL1", "ReduceL2", "ReduceLogSum",
                   "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
                   "ReduceSumSquare", "Relu", "RequantizeLinear", "ReverseSequence", "RMSNormalization", "ScatterND",
                   "Sigmoid", "Sqrt", "Swish", "Tanh", "Xor"}


@dataclass(frozen=True)
class Chip:
    name: str
    internal_ram: int  # on-chip SRAM, bytes (what the heap can ever hold is less)
    psram_reference: int  # PSRAM of Espressif's reference boards


CHIPS = {
    "esp32p4": Chip("ESP32-P4", 768 * 1024, 32 << 20),
    "esp32s3": Chip("ESP32-S3", 512 * 1024, 8 << 20),
}
LOCATIONS = ("flash_rodata", "flash_partition", "sdcard")
#: the share of the reference board's PSRAM a model may take: the rest is for camera frames and the application
MODEL_PSRAM_SHARE = 0.9


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# ------------------------------------------------------------------------------------------------ the planner
class _Info:
    """dl::TensorInfo: a variable tensor's life and its in-place links."""

    def __init__(self, name: str, begin: int, shape: list[int], dtype: str):
        self.name, self.begin, self.end = name, begin, -1
        n = 1
        for d in shape:
            n *= int(d)
        self.size = n * DTYPE_BYTES.get(dtype, 1)
        self.leader: _Info | None = None
        self.dirty: _Info | None = None
        self.clean: _Info | None = None
        self.offset = 0

    def update_time(self, t: int) -> None:
        if self.leader is not None:
            self.leader.update_time(t)
            self.end = self.leader.end
        elif t == -1:
            self.end = -1
        elif t > self.end:
            self.end = t

    def set_leader(self, leader: "_Info | None") -> None:
        self.leader = leader
        if leader is not None and (leader.end < self.end or self.end == -1):
            leader.update_time(self.end)

    def root(self) -> "_Info":
        return self.leader.root() if self.leader is not None else self


class _Chunk:
    __slots__ = ("size", "offset", "free", "tensor")

    def __init__(self, size: int, offset: int = 0, free: bool = True, tensor: _Info | None = None):
        self.size, self.offset, self.free, self.tensor = size, offset, free, tensor


def _tensor_infos(nodes, graph_inputs: list[str], graph_outputs: list[str], info: dict, consts: set[str]):
    """MemoryManagerGreedy::get_tensor_info_from_fbs: variables in ModelContext's index order (each node's
    non-parameter inputs, then its outputs, first appearance), with their lives and in-place links."""
    order: list[str] = []
    seen = set()
    for nd in nodes:
        for name in [*(i for i in nd.inputs if i and i not in consts), *nd.outputs]:
            if name not in seen:
                seen.add(name)
                order.append(name)
    infos: dict[str, _Info] = {}

    def make(name: str, begin: int) -> _Info:
        shape, dtype = info[name][0], info[name][1]
        return _Info(name, begin, [d if isinstance(d, int) else 1 for d in (shape or [])], dtype)

    for name in graph_inputs:
        if name in seen:
            infos[name] = make(name, 0)
    outputs = set(graph_outputs)
    for i, nd in enumerate(nodes):
        for name in nd.inputs:
            if not name or name in consts or name not in infos:
                continue
            t = infos[name]
            if t.dirty is not None:  # the previous dirty follower would spoil this input: unlink it
                t.dirty.set_leader(None)
                t.dirty = None
            if name not in outputs:
                t.update_time(i + 1)
        mode = "changed" if nd.op in INPLACE_CHANGED else "unchanged" if nd.op in INPLACE_UNCHANGED else None
        if mode and len(nd.outputs) == 1:
            out = make(nd.outputs[0], i)
            infos[out.name] = out
            leader = None
            for name in nd.inputs:
                if not name or name in consts or name not in infos:
                    continue
                leader = infos[name]
                if leader.size >= out.size:
                    if name not in outputs:
                        break
                    leader = None
                else:
                    leader = None
            if leader is not None:
                pre_dirty, pre_clean = leader.dirty, leader.clean
                if pre_dirty is not None:
                    leader.dirty = None
                    pre_dirty.set_leader(None)
                out.set_leader(leader)
                if mode == "changed":
                    if pre_clean is not None:
                        out.set_leader(None)
                    else:
                        leader.dirty = out
                else:
                    leader.clean = out
        else:
            for name in nd.outputs:
                infos[name] = make(name, i)
    return [infos[n] for n in order if n in infos]


def _simulate(infos: list[_Info], node_num: int) -> list[_Chunk]:
    """MemoryManagerGreedy::simulate (PSRAM, or internal RAM without it: the same algorithm on one list)."""
    alloc_at: list[list[_Info]] = [[] for _ in range(node_num)]
    free_at: list[list[_Info]] = [[] for _ in range(node_num)]
    for t in infos:
        if t.leader is not None:  # shares its leader's buffer
            continue
        if 0 <= t.begin < node_num:
            alloc_at[t.begin].append(t)
        if 0 <= t.end < node_num:
            free_at[t.end].append(t)
    memory: list[_Chunk] = []
    free: list[_Chunk] = []

    def sort_free() -> None:
        free.sort(key=lambda c: c.size)  # std::list::sort: stable, ascending size

    def free_tensor(t: _Info) -> None:
        for k, c in enumerate(memory):
            if c.tensor is t:
                c.free, c.tensor = True, None
                if k + 1 < len(memory) and memory[k + 1].free:
                    nxt = memory[k + 1]
                    c.size += nxt.size
                    del memory[k + 1]
                    free.remove(nxt)
                if k > 0 and memory[k - 1].free:
                    prv = memory[k - 1]
                    c.size += prv.size
                    c.offset = min(c.offset, prv.offset)
                    del memory[k - 1]
                    free.remove(prv)
                free.append(c)
                sort_free()
                return

    def alloc_tensor(t: _Info) -> None:
        need = _aligned(t.size)
        chunk = None
        for c in free:
            if c.size >= t.size:
                chunk = c
                free.remove(c)
                if c.size > need:  # MemoryChunk::insert splits off the rest
                    rest = _Chunk(c.size - need, c.offset + need)
                    c.size = need
                    memory.insert(memory.index(c) + 1, rest)
                    free.append(rest)
                    sort_free()
                c.free, c.tensor = False, t
                break
        if chunk is None and memory and memory[-1].free:  # extend the free last chunk
            last = memory[-1]
            free.remove(last)
            sort_free()
            last.size, last.free, last.tensor = need, False, t
            chunk = last
        if chunk is None:
            chunk = _Chunk(need, memory[-1].offset + memory[-1].size if memory else 0, False, t)
            memory.append(chunk)
        t.offset = chunk.offset

    for i in range(node_num):
        for t in free_at[i]:
            free_tensor(t)
        for t in alloc_at[i]:
            alloc_tensor(t)
    return memory


# ------------------------------------------------------------------------------------------------ the plan
@dataclass
class MemoryPlan:
    path: str
    target: str
    location: str
    spiram: bool
    file_bytes: int
    activation_bytes: int  # the planner's block
    activation_sum: int  # every activation tensor's own size, were none reused
    largest_tensor: tuple[str, int]
    tensors: int
    inplace: int
    parameter_bytes: int  # constants as allocated by param_copy (16-byte aligned each)
    parameter_count: int
    test_value_bytes: int  # the test input and outputs stored in the file
    test_tensors: int
    placement: dict[str, int] = field(default_factory=dict)  # name -> offset in the block

    @property
    def psram_bytes(self) -> int:
        """PSRAM ESP-DL holds for a loaded model (steady state)."""
        if not self.spiram:
            return 0
        loaded = self.file_bytes if self.location == "sdcard" else 0
        return self.activation_bytes + self.parameter_bytes + loaded

    @property
    def internal_bytes(self) -> int:
        """Internal RAM for the tensors (ESP-DL's own objects not counted)."""
        return 0 if self.spiram else self.activation_bytes + self.parameter_bytes

    @property
    def test_extra_bytes(self) -> int:
        """What dl::Model::test() allocates on top while it runs (test input and outputs as tensors)."""
        return self.test_value_bytes

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in ("path", "target", "location", "spiram", "file_bytes", "activation_bytes",
                                           "activation_sum", "tensors", "inplace", "parameter_bytes",
                                           "parameter_count", "test_value_bytes", "test_tensors")}
        d.update(planner=PLANNER, largest_tensor=list(self.largest_tensor), psram_bytes=self.psram_bytes,
                 internal_bytes=self.internal_bytes, test_extra_bytes=self.test_extra_bytes)
        return d


def plan(path: str | Path, target: str | None = None, location: str = "flash_rodata",
         spiram: bool = True) -> MemoryPlan:
    """ESP-DL's allocation for the model at path on target (None: the chip the file records)."""
    from yolo11_pose.espdl.executor import load_graph

    g = load_graph(path)
    target = target or g.target or "esp32p4"
    if target not in CHIPS:
        raise ValueError(f"unknown target {target!r}; one of {sorted(CHIPS)}")
    if location not in LOCATIONS:
        raise ValueError(f"unknown location {location!r}; one of {LOCATIONS}")
    consts = set(g.consts)
    infos = _tensor_infos(g.nodes, [t.name for t in g.inputs], [t.name for t in g.outputs], g.info, consts)
    memory = _simulate(infos, len(g.nodes))
    block = memory[-1].offset + memory[-1].size if memory else 0
    # Constants the modules use: node inputs and lookup tables given as attributes (espdl.read_espdl lists both).
    from yolo11_pose.espdl.reader import read_espdl

    m = read_espdl(path)
    used = {n for layer in m.layers for n in layer.params}
    params = sum(_aligned(q.nbytes) for q in m.params if q.name in used)
    tests = [*g.test_inputs.values(), *g.test_outputs.values()]
    largest = max(infos, key=lambda t: t.size)
    return MemoryPlan(
        path=str(path), target=target, location=location, spiram=spiram, file_bytes=Path(path).stat().st_size,
        activation_bytes=block, activation_sum=sum(_aligned(t.size) for t in infos),
        largest_tensor=(largest.name, largest.size), tensors=len(infos),
        inplace=sum(t.leader is not None for t in infos), parameter_bytes=params, parameter_count=len(used),
        test_value_bytes=sum(_aligned(c.value.nbytes) for c in tests), test_tensors=len(tests),
        placement={t.name: t.root().offset for t in infos})


def _mb(n: int) -> str:
    return f"{n:,} B ({n / 1e6:.2f} MB)"


def format_plan(p: MemoryPlan) -> str:
    chip = CHIPS[p.target]
    where = "PSRAM" if p.spiram else "internal RAM"
    src = {"flash_rodata": "in flash (embedded in the app, flash rodata)",
           "flash_partition": "in flash (its data partition)",
           "sdcard": "on the SD card, read into PSRAM at load"}[p.location]
    lines = [
        f"{p.path} on {chip.name} ({p.target}), as YOLO11Pose loads it: dl::Model(source, location) with "
        f"max_internal_size 0, MEMORY_MANAGER_GREEDY, param_copy true; CONFIG_SPIRAM={'y' if p.spiram else 'n'}",
        f"  planner        {PLANNER}: {'simulate()' if p.spiram else 'simulate() in internal RAM'}, "
        f"every activation in one block",
        f"  activations    {_mb(p.activation_bytes)} in {where}: one block for {p.tensors} tensors ({p.inplace} in "
        f"place); {_mb(p.activation_sum)} without reuse; largest {p.largest_tensor[0]} {p.largest_tensor[1]:,} B",
        f"  parameters     {_mb(p.parameter_bytes)} in {where}: {p.parameter_count} constants copied from the "
        f"model (param_copy), 16-byte aligned",
        f"  model file     {_mb(p.file_bytes)} {src}",
        f"  test values    {_mb(p.test_value_bytes)} in the file ({p.test_tensors} tensors); dl::Model::test() "
        f"holds them in {where} while it runs" if p.test_tensors else "  test values    none in the file",
        f"  total          {_mb(p.psram_bytes)} of PSRAM, {_mb(p.internal_bytes)} of internal RAM for tensors "
        f"(ESP-DL's own objects, a few tens of KB of internal RAM, not counted)",
    ]
    if p.spiram:
        lines.append(f"  chip           {chip.name}: {chip.internal_ram // 1024} KB internal RAM; the activations "
                     f"{'need' if p.activation_bytes > chip.internal_ram else 'would fit without'} PSRAM "
                     f"(Espressif's reference board: {chip.psram_reference >> 20} MB, "
                     f"{100 * p.psram_bytes / chip.psram_reference:.0f} % of it)")
    lines.append("  assumes        ESP-DL runs the nodes in the file's order (ESP-PPQ writes them sorted) and computes "
                 "the file's value_info shapes")
    return "\n".join(lines)


def memory_command(path: str, target: str | None, location: str, as_json: bool) -> int:
    p = plan(path, target, location)
    print(json.dumps(p.to_json(), indent=2) if as_json else format_plan(p))
    return 0
