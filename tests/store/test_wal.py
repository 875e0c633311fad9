import threading
from pathlib import Path

from watchkeeper.store.wal import WriteAheadLog, encode_record, list_segments, segment_name


def _open(directory: Path, segment_bytes: int = 1 << 20) -> tuple[WriteAheadLog, list[bytes]]:
    wal = WriteAheadLog(directory, segment_bytes)
    replayed = list(wal.replay(0))
    wal.start()
    return wal, replayed


def test_records_survive_reopen_in_order(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path)
    applied: list[bytes] = []
    futures = [
        wal.submit(f"r{i}".encode(), lambda i=i: applied.append(f"r{i}".encode()))
        for i in range(50)
    ]
    for future in futures:
        future.result()
    wal.close()
    assert applied == [f"r{i}".encode() for i in range(50)]
    _, replayed = _open(tmp_path)
    assert replayed == applied


def test_concurrent_writers_share_fsyncs(tmp_path: Path) -> None:
    fsyncs: list[float] = []
    wal = WriteAheadLog(tmp_path, 1 << 20, observe_fsync=fsyncs.append)
    list(wal.replay(0))
    wal.start()

    def writer(n: int) -> None:
        for i in range(25):
            wal.submit(f"{n}-{i}".encode()).result()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wal.close()
    assert len(fsyncs) <= 200  # never more than one per record
    _, replayed = _open(tmp_path)
    assert sorted(replayed) == sorted(f"{n}-{i}".encode() for n in range(8) for i in range(25))


def test_torn_tail_is_truncated_and_writing_continues(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path)
    wal.submit(b"complete").result()
    wal.close()
    segment = tmp_path / segment_name(list_segments(tmp_path)[-1])
    with segment.open("ab") as handle:
        handle.write(encode_record(b"torn record")[:-3])
    wal, replayed = _open(tmp_path)
    assert replayed == [b"complete"]
    wal.submit(b"after").result()
    wal.close()
    _, replayed = _open(tmp_path)
    assert replayed == [b"complete", b"after"]


def test_corrupt_checksum_ends_replay(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path)
    wal.submit(b"good").result()
    wal.submit(b"flipped").result()
    wal.close()
    segment = tmp_path / segment_name(list_segments(tmp_path)[-1])
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    _, replayed = _open(tmp_path)
    assert replayed == [b"good"]


def test_segments_rotate_and_cut(tmp_path: Path) -> None:
    wal, _ = _open(tmp_path, segment_bytes=1 << 20)
    for _ in range(3):
        wal.submit(b"x" * (600 * 1024)).result()
    assert len(list_segments(tmp_path)) >= 2
    before = wal.current_segment
    assert wal.cut().result() == before + 1
    wal.submit(b"new").result()
    wal.remove_segments_before(before + 1)
    wal.close()
    wal2 = WriteAheadLog(tmp_path, 1 << 20)
    assert list(wal2.replay(0)) == [b"new"]
