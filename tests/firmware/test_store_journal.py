import os

from firmware.store import Journal


def test_journal_appends_and_reads_newest_first(tmp_path):
    j = Journal(str(tmp_path), 'events')
    for i in range(5):
        j.append({'kind': 'pick' if i % 2 else 'restock', 'i': i})
    assert [r['i'] for r in j.recent(3)] == [4, 3, 2]
    assert [r['i'] for r in j.recent(kind='pick')] == [3, 1]
    assert j.recent(1)[0]['seq'] == 5


def test_journal_reopens_with_its_history_and_sequence(tmp_path):
    j = Journal(str(tmp_path), 'events')
    for i in range(3):
        j.append({'i': i})
    j.close()
    k = Journal(str(tmp_path), 'events')
    assert [r['i'] for r in k.recent()] == [2, 1, 0]
    assert k.append({'i': 3})['seq'] == 4


def test_journal_rotates_so_files_stay_bounded(tmp_path):
    j = Journal(str(tmp_path), 'events', max_bytes=2000, keep=3, recent=50, fsync=False)
    for i in range(2000):
        j.append({'i': i, 'pad': 'x' * 20})
    files = sorted(os.listdir(tmp_path))
    assert files == ['events.jsonl', 'events.jsonl.1', 'events.jsonl.2']
    assert all(os.path.getsize(tmp_path / f) < 2100 for f in files)
    assert j.recent(1)[0]['i'] == 1999


def test_journal_skips_a_line_torn_by_a_power_cut(tmp_path):
    j = Journal(str(tmp_path), 'events')
    j.append({'i': 1})
    j.close()
    with open(tmp_path / 'events.jsonl', 'a') as f:
        f.write('{"i": 2, "pa')
    k = Journal(str(tmp_path), 'events')
    assert [r['i'] for r in k.recent()] == [1]
    k.append({'i': 3})
    k.close()
    assert [r['i'] for r in Journal(str(tmp_path), 'events').recent()] == [3, 1]
