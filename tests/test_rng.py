from simulator.engine.rng import derive_seed, stream


def test_same_path_same_sequence_and_paths_are_independent() -> None:
    a = [stream(7, "speaker", 1, 3).random() for _ in range(3)]
    b = [stream(7, "speaker", 1, 3).random() for _ in range(3)]
    assert a == b
    assert stream(7, "speaker", 1, 4).random() != a[0]
    assert stream(8, "speaker", 1, 3).random() != a[0]
    # no accidental collisions between ("a", "bc") and ("ab", "c")
    assert derive_seed(1, "a", "bc") != derive_seed(1, "ab", "c")
    assert 0 <= derive_seed(2**70, "x") < 2**63
