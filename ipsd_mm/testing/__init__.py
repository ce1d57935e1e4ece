"""What the tests, the demo, the accuracy study and the benchmarks share: the DigitScenes data
set (``digit_scenes``), what they do to its configs (``digit_configs``) and synthetic batches of
pairs (``synthetic``). Importable, so that no test or tool reaches into ``tools/``."""
