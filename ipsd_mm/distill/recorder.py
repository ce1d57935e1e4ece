"""``Recorder``: what chosen modules (and methods) compute during the training forward that
already runs, kept through forward hooks and method wrappers (as MMRazor's module and method
recorders do), so the distillation needs no second forward of the network."""
from collections import defaultdict
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from torch import nn


class MethodCall(NamedTuple):
    """One recorded call of a method: its arguments and what it returned."""
    args: tuple
    kwargs: dict
    output: Any


class Recorder:
    """Keeps, while recording, what each watched module returns on every call; for the
    modules named in ``with_kwargs``, the keyword arguments of each call instead (a loss
    module's ``avg_factor``, say). ``methods`` names ``(owner, method name)`` pairs whose calls
    are kept too, as :class:`MethodCall` (a head's per-level losses, an assigner's matching:
    what no module returns): the method is wrapped on that instance only, and :meth:`remove`
    restores it."""

    def __init__(self, modules: Dict[str, nn.Module], with_kwargs: Sequence[str] = (),
                 methods: Optional[Dict[str, Tuple[object, str]]] = None) -> None:
        methods = methods or {}
        self.names = list(modules) + list(methods)
        self.calls: Dict[str, List[Any]] = defaultdict(list)
        self.derived: Dict[str, Any] = {}
        self.active = False
        self.handles = [
            module.register_forward_hook(partial(self._keep_kwargs, name), with_kwargs=True)
            if name in with_kwargs else
            module.register_forward_hook(partial(self._keep_output, name))
            for name, module in modules.items()
        ]
        self.wrapped = []
        for name, (owner, method) in methods.items():
            setattr(owner, method, partial(self._call_and_keep, name, getattr(owner, method)))
            self.wrapped.append((owner, method))

    def _call_and_keep(self, name: str, method: Callable, *args, **kwargs) -> Any:
        output = method(*args, **kwargs)
        if self.active:
            self.calls[name].append(MethodCall(args, kwargs, output))
        return output

    def _keep_output(self, name: str, module: nn.Module, args: tuple, output: Any) -> None:
        if self.active:
            self.calls[name].append(output)

    def _keep_kwargs(self, name: str, module: nn.Module, args: tuple, kwargs: dict,
                     output: Any) -> None:
        if self.active:
            self.calls[name].append(kwargs)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Record during the block; what was recorded lives until :meth:`clear`."""
        self.clear()
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def clear(self) -> None:
        self.calls.clear()  # do not keep the graph alive past the step
        self.derived.clear()

    def derive(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per recorded forward: what several readers derive from the
        same calls (cleared with them)."""
        if name not in self.derived:
            self.derived[name] = compute()
        return self.derived[name]

    def all(self, name: str) -> List[Any]:
        """What every call of ``name`` recorded; it must have run."""
        if not self.calls.get(name):
            raise RuntimeError(f'IPSDHook: {name} was not called during the training forward; '
                               'this model does not run the way its adapter expects')
        return self.calls[name]

    def get(self, name: str) -> Any:
        """The output of a module that must run exactly once per training forward."""
        calls = self.all(name)
        if len(calls) > 1:
            raise RuntimeError(f'IPSDHook: {name} ran {len(calls)} times in one training '
                               'forward, so which output to distil is ambiguous; this model is '
                               'not supported')
        return calls[0]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for owner, method in self.wrapped:
            vars(owner).pop(method, None)  # the class's method again
        self.handles, self.wrapped = [], []
