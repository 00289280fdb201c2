import numpy as np
import pytest

from pipeline import Pipeline
from pipeline.errors import ConfigError
from stages.tagging import (LEXICON_CLASSES, LexiconEmbedding, RNNTagger, lexicon_matrix, lexicon_slots, lexicon_word_counts,
                            lexicon_word_ids, pos_class, read_word_list)

from test_tagging import ZH_SPANS, ZH_TEXTS, tagging_config

WORDS = "# a user word list\n北京 20 ns\n张伟\n上海工作\n工作 3\n罕见词 1\nＡＢ公司 nt\n\n中华人民共和国 5 ns\n"


def lexicon_config(tmp_path, lexicon=None, bigrams=None, **model):
    """A char tagger with bigram and lexicon features (the user word list ``WORDS`` only);
    ``lexicon`` / ``bigrams`` update those families' options."""
    path = tmp_path / "words.txt"
    path.write_text(WORDS, encoding="utf-8")
    features = {"bigrams": {"dim": 4, **(bigrams or {})},
                "lexicon": {"jieba": False, "path": str(path), "max_length": 4, **(lexicon or {})}}
    cfg = tagging_config(tokenizer="char", features=features, **model)
    cfg["stages"]["tokenizer"]["lowercase"] = True
    return cfg


def test_lexicon_matrix_marks_begin_inside_and_end_of_every_word():
    # 南京市长江大桥: 南京 南京市 市长 长江 长江大桥 大桥 all match, overlapping.
    lexicon = {"南京", "南京市", "市长", "长江", "长江大桥", "大桥", "江桥"}
    got = lexicon_matrix(list("南京市长江大桥"), lexicon, 4)
    #            len 2      len 3      len 4
    #           B  M  E    B  M  E    B  M  E
    want = [
        [1, 0, 0, 1, 0, 0, 0, 0, 0],  # 南: starts 南京, 南京市
        [0, 0, 1, 0, 1, 0, 0, 0, 0],  # 京: ends 南京, inside 南京市
        [1, 0, 0, 0, 0, 1, 0, 0, 0],  # 市: starts 市长, ends 南京市
        [1, 0, 1, 0, 0, 0, 1, 0, 0],  # 长: starts 长江 and 长江大桥, ends 市长
        [0, 0, 1, 0, 0, 0, 0, 1, 0],  # 江: ends 长江, inside 长江大桥
        [1, 0, 0, 0, 0, 0, 0, 1, 0],  # 大: starts 大桥, inside 长江大桥
        [0, 0, 1, 0, 0, 0, 0, 0, 1],  # 桥: ends 大桥 and 长江大桥
    ]
    assert got.dtype == np.float32
    assert got.tolist() == want


def test_lexicon_matrix_ignores_words_longer_than_max_length():
    got = lexicon_matrix(list("长江大桥"), {"长江大桥"}, 3)
    assert got.shape == (4, 6) and not got.any()


def test_lexicon_matrix_of_an_empty_sentence_has_no_rows():
    assert lexicon_matrix([], {"北京"}, 4).shape == (0, 9)


def test_read_word_list_keeps_the_first_field_and_filters_by_frequency(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text(WORDS, encoding="utf-8")
    words = read_word_list(str(path), min_freq=3)
    assert set(words) == {"北京", "张伟", "上海工作", "工作", "ＡＢ公司", "中华人民共和国"}
    # The part-of-speech tag: the third field, or the second where the frequency is left out.
    assert (words["北京"], words["ＡＢ公司"], words["中华人民共和国"], words["张伟"], words["工作"]) == ("ns", "nt", "ns", "", "")


def test_pos_class_groups_jieba_tags():
    tags = ("nr", "nrt", "nrfg", "ns", "nt", "nz", "j", "n", "vn", "ng", "v", "vd", "m", "a", "")
    assert [pos_class(t) for t in tags] == ["person", "person", "person", "place", "organization", "proper", "abbreviation",
                                            "noun", "noun", "noun", "verb", "verb", "other", "other", ""]
    assert {pos_class(t) for t in tags} - {""} == set(LEXICON_CLASSES)


def test_lexicon_options_round_trip():
    m = RNNTagger(features={"lexicon": {"max_length": 5, "jieba": False, "path": "w.txt", "min_freq": 2}})
    assert RNNTagger.from_config(m.get_config()).get_config() == m.get_config()


def test_lexicon_pos_needs_lexicon_word_vectors():
    with pytest.raises(ConfigError, match=r"features.lexicon.pos needs dim > 0"):
        RNNTagger(features={"lexicon": {"pos": True}})
    RNNTagger(features={"lexicon": {"dim": 4, "pos": True}})


def test_lexicon_features_need_some_words():
    with pytest.raises(ConfigError, match="features.lexicon.jieba is false and no path is given"):
        RNNTagger(features={"lexicon": {"jieba": False}})


def test_lexicon_max_length_must_be_at_least_two():
    with pytest.raises(ConfigError, match="features.lexicon.max_length must be an integer >= 2"):
        RNNTagger(features={"lexicon": {"max_length": 1}})


def test_lexicon_features_need_a_char_tokenizer():
    with pytest.raises(ConfigError, match="stages.model.features.lexicon needs a char tokenizer"):
        Pipeline.from_config(tagging_config(features={"lexicon": {}}))


def test_lexicon_path_must_exist_when_fitting(tmp_path):
    cfg = tagging_config(tokenizer="char", features={"lexicon": {"jieba": False, "path": str(tmp_path / "none.txt")}})
    with pytest.raises(ConfigError, match="features.lexicon.path must be the path of an existing word list"):
        Pipeline.from_config(cfg).fit(ZH_TEXTS, ZH_SPANS, epochs=1)


@pytest.fixture(scope="module")
def zh_lexicon(tmp_path_factory):
    cfg = lexicon_config(tmp_path_factory.mktemp("lexicon"))
    return Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=8)


def test_lexicon_is_normalised_like_the_tokens_and_cut_to_max_length(zh_lexicon):
    # The tokenizer lowercases and applies NFKC, so ＡＢ公司 is looked up as ab公司; 中华人民共和国
    # is longer than lexicon_max_length.
    assert zh_lexicon.stage("model").feature("lexicon").lexicon_ == sorted(["北京", "张伟", "上海工作", "工作", "罕见词", "ab公司"])


def test_lexicon_features_reach_the_model(zh_lexicon):
    model = zh_lexicon.stage("model")
    assert model.feature_names()[-1] == "lexicon"
    assert model.model_.get_layer("lexicon").output.shape[-1] == 9
    sentence = zh_lexicon.tokenize(["张伟去上海工作。"])[0]
    feats = model.feature_arrays(sentence)["lexicon"]
    assert feats[:, 0].tolist() == [1, 0, 0, 0, 0, 1, 0, 0]  # 张伟 and 工作 begin
    assert feats[:, 2].tolist() == [0, 1, 0, 0, 0, 0, 1, 0]  # and end
    assert feats[:, 6].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]  # 上海工作 begins at 上


def test_lexicon_tagger_predicts_the_same_after_loading(zh_lexicon, tmp_path):
    zh_lexicon.save(str(tmp_path))
    lexicon = zh_lexicon.stage("model").feature("lexicon")
    words = (tmp_path / "model" / "lexicon.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert words == lexicon.lexicon_
    # A loaded tagger uses the saved lexicon, not the word list (changed here).
    with open(lexicon.path, "w", encoding="utf-8") as f:
        f.write("王芳\n")
    loaded = Pipeline.load(str(tmp_path))
    assert loaded.stage("model").feature("lexicon").lexicon_ == words
    texts = ZH_TEXTS + ["张伟在上海工作，王芳在北京。"]
    assert loaded.predict(texts) == zh_lexicon.predict(texts)


def test_lexicon_word_ids_follow_the_slot_layout():
    index = {"南京": 2, "南京市": 3, "市长": 1, "长江大桥": 4}
    got = lexicon_word_ids(list("南京市长江大桥"), index, 4)
    slots = lexicon_slots(4)
    assert slots == [("B", 2, 0), ("B", 3, 0), ("B", 4, 0), ("M", 3, 1), ("M", 4, 1), ("M", 4, 2),
                     ("E", 2, 1), ("E", 3, 2), ("E", 4, 3)]
    want = [
        [2, 3, 0, 0, 0, 0, 0, 0, 0],  # 南
        [0, 0, 0, 3, 0, 0, 2, 0, 0],  # 京
        [1, 0, 0, 0, 0, 0, 0, 3, 0],  # 市
        [0, 0, 4, 0, 0, 0, 1, 0, 0],  # 长
        [0, 0, 0, 0, 4, 0, 0, 0, 0],  # 江
        [0, 0, 0, 0, 0, 4, 0, 0, 0],  # 大
        [0, 0, 0, 0, 0, 0, 0, 0, 4],  # 桥
    ]
    assert got.tolist() == want


def test_lexicon_embedding_averages_the_word_vectors_of_each_position():
    layer = LexiconEmbedding(5, 2, 3)
    layer.build(None)
    table = np.arange(10, dtype="float32").reshape(5, 2)
    layer.embedding.set_weights([table])
    # slots: B2 B3 M3 E2 E3
    out = np.asarray(layer(np.array([[[2, 3, 0, 4, 0], [0, 0, 0, 0, 0]]])))
    assert out[0, 0].tolist() == [*((table[2] + table[3]) / 2), 0.0, 0.0, *table[4]]
    assert not out[0, 1].any()


def test_frequency_pooling_weighs_words_and_normalises_over_all_positions():
    layer = LexiconEmbedding(5, 2, 3, pooling="frequency")
    layer.build(None)
    table = np.arange(10, dtype="float32").reshape(5, 2)
    layer.embedding.set_weights([table])
    layer.set_word_weights([0.0, 1.0, 2.0, 1.0, 5.0])
    # slots: B2 B3 M3 E2 E3; the token begins words 2 and 3 and ends word 4: Z = 2 + 1 + 5 = 8
    out = np.asarray(layer(np.array([[[2, 3, 0, 4, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]]])))
    np.testing.assert_allclose(out[0, 0], [*(3 * (2 * table[2] + table[3]) / 8), 0.0, 0.0, *(3 * 5 * table[4] / 8)], rtol=1e-6)
    assert not out[0, 1].any()  # no words: zeros, not NaN
    np.testing.assert_allclose(out[0, 2], [*(3 * table[1]), 0, 0, 0, 0], rtol=1e-6)  # one word: 3 x its vector
    with pytest.raises(ValueError, match="5 values"):
        layer.set_word_weights([1.0, 2.0])
    with pytest.raises(ValueError, match="pooling must be one of"):
        LexiconEmbedding(5, 2, 3, pooling="max")


def test_lexicon_word_counts_skip_words_inside_longer_matches():
    lexicon = {"南京", "南京市", "市长", "长江", "长江大桥", "大桥", "江桥"}
    # 南京 lies inside 南京市, 长江 and 大桥 inside 长江大桥; 市长 overlaps 南京市 but is not inside it.
    every, outer = lexicon_word_counts([list("南京市长江大桥"), list("南京大桥")], lexicon, 4)
    assert outer == {"南京市": 1, "市长": 1, "长江大桥": 1, "南京": 1, "大桥": 1}
    assert every == {"南京": 2, "南京市": 1, "市长": 1, "长江": 1, "长江大桥": 1, "大桥": 2}  # every match counts here
    assert lexicon_word_counts([list("南京市长江大桥")], lexicon, 3)[1] == {"南京市": 1, "市长": 1, "长江": 1, "大桥": 1}


def test_frequency_pooling_weights_come_from_training_counts_and_survive_save(tmp_path):
    cfg = lexicon_config(tmp_path, lexicon={"dim": 3, "pooling": "frequency"})
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=1)
    model = p.stage("model")
    layer = model.model_.get_layer("lexicon_embedding")
    weights = dict(zip(model.feature("lexicon").lexicon_words_, np.asarray(layer.word_weight).tolist()))
    # 1 + matches not inside a longer word: 工作 is matched 6 times, 3 of them inside 上海工作.
    assert weights == {"<pad>": 1.0, "<unk>": 1.0, "北京": 7.0, "工作": 4.0, "张伟": 7.0, "上海工作": 4.0}
    assert layer.trainable_weights == [layer.embedding.embeddings]  # the weights are not trained
    p.save(str(tmp_path / "saved"))
    loaded = Pipeline.load(str(tmp_path / "saved"))
    assert loaded.stage("model").get_config()["features"]["lexicon"]["pooling"] == "frequency"
    np.testing.assert_array_equal(np.asarray(loaded.stage("model").model_.get_layer("lexicon_embedding").word_weight),
                                  np.asarray(layer.word_weight))
    assert loaded.predict(ZH_TEXTS) == p.predict(ZH_TEXTS)


def test_frequency_pooling_needs_lexicon_word_vectors(tmp_path):
    with pytest.raises(ConfigError, match="features.lexicon.pooling needs dim > 0"):
        Pipeline.from_config(lexicon_config(tmp_path, lexicon={"pooling": "frequency"}))
    with pytest.raises(ConfigError, match="features.lexicon.pooling must be one of mean, frequency"):
        Pipeline.from_config(lexicon_config(tmp_path, lexicon={"dim": 3, "pooling": "sum"}))


def test_lexicon_word_vectors_are_learned_for_words_seen_in_training(tmp_path):
    p = Pipeline.from_config(lexicon_config(tmp_path, lexicon={"dim": 3})).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=2)
    model = p.stage("model")
    # Matched in the training texts: 北京 (6 times), 张伟 (6), 工作 (6), 上海工作 (3).
    assert model.feature("lexicon").lexicon_words_ == ["<pad>", "<unk>", "北京", "工作", "张伟", "上海工作"]
    assert model.model_.get_layer("lexicon_embedding").output.shape[-1] == 9
    p.save(str(tmp_path / "saved"))
    assert (tmp_path / "saved" / "model" / "lexicon_words.txt").is_file()
    assert Pipeline.load(str(tmp_path / "saved")).predict(ZH_TEXTS) == p.predict(ZH_TEXTS)


def test_lexicon_pos_gives_words_without_a_vector_the_vector_of_their_class(tmp_path):
    cfg = lexicon_config(tmp_path, lexicon={"dim": 3, "pos": True, "word_min_freq": 4})
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=2)
    model = p.stage("model")
    lexicon = model.feature("lexicon")
    # 北京, 张伟 and 工作 are matched 6 times in training; 上海工作 only 3 (< 4) and the others never.
    classes = [f"<pos:{c}>" for c in LEXICON_CLASSES]
    assert lexicon.lexicon_words_ == ["<pad>", "<unk>", *classes, "北京", "工作", "张伟"]
    ids = dict(zip(lexicon.lexicon_, lexicon.ids_of(lexicon.lexicon_)))
    assert ids == {"北京": 10, "工作": 11, "张伟": 12, "ab公司": 2 + LEXICON_CLASSES.index("organization"),
                   "上海工作": 1, "罕见词": 1}  # the last two have no tag: <unk>
    assert lexicon.lexicon_ == ["ab公司", "上海工作", "北京", "工作", "张伟", "罕见词"]
    assert lexicon.lexicon_classes_ == ["organization", "", "place", "", "", ""]
    sentence = p.tokenize(["ab公司"])[0]
    assert model.feature_arrays(sentence)["lexicon_ids"][0, :3].tolist() == [0, 0, ids["ab公司"]]  # slots B2 B3 B4 of "a"
    p.save(str(tmp_path / "saved"))
    assert (tmp_path / "saved" / "model" / "lexicon_classes.txt").is_file()
    loaded = Pipeline.load(str(tmp_path / "saved"))
    assert loaded.stage("model").feature("lexicon").ids_of(lexicon.lexicon_) == lexicon.ids_of(lexicon.lexicon_)
    assert loaded.predict(ZH_TEXTS) == p.predict(ZH_TEXTS)


def _write_vectors(path, vectors):
    dim = len(next(iter(vectors.values())))
    lines = [f"{len(vectors)} {dim}"] + [w + " " + " ".join(str(v) for v in vec) for w, vec in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_pretrained_bigram_and_lexicon_vectors_start_the_embeddings(tmp_path):
    bigrams, words = tmp_path / "bigrams.vec", tmp_path / "words.vec"
    # 张伟 occurs 6 times in training, 伟和 3 times (under bigram_min_freq 4), 无无 never.
    _write_vectors(bigrams, {"张伟": [0.5, -0.5, 0.25, 1.0], "伟和": [1.0, 2.0, 3.0, 4.0], "无无": [9.0, 9.0, 9.0, 9.0]})
    # 北京 is matched in training; 罕见词 is in the lexicon but never in a training sentence.
    _write_vectors(words, {"北京": [0.1, 0.2, 0.3], "罕见词": [-1.0, 0.0, 1.0], "不在词表": [5.0, 5.0, 5.0]})
    cfg = lexicon_config(tmp_path, lexicon={"dim": 3, "pretrained": str(words)},
                         bigrams={"min_freq": 4, "pretrained": str(bigrams)}, learning_rate=1e-9)
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS * 3, ZH_SPANS * 3, epochs=1)
    model = p.stage("model")
    bigram_items, lexicon = model.feature("bigrams").bigrams_, model.feature("lexicon")
    assert "伟和" in bigram_items and "无无" not in bigram_items  # rare but pretrained: kept
    assert "罕见词" in lexicon.lexicon_words_ and "不在词表" not in lexicon.lexicon_words_
    assert lexicon.ids_of(["罕见词"]) != [1]
    assert model.pretrained_coverage_ == {"bigram": {"rows": len(bigram_items), "pretrained": 2},
                                          "lexicon_word": {"rows": len(lexicon.lexicon_words_), "pretrained": 2}}
    table = model.model_.get_layer("bigram_embedding").get_weights()[0]  # (training moved them by ~1e-9)
    np.testing.assert_allclose(table[bigram_items.index("伟和")], [1.0, 2.0, 3.0, 4.0], atol=1e-5)
    table = model.model_.get_layer("lexicon_embedding").embedding.get_weights()[0]
    np.testing.assert_allclose(table[lexicon.lexicon_words_.index("罕见词")], [-1.0, 0.0, 1.0], atol=1e-5)
    # The vectors are read in fit only: a saved tagger loads and predicts without the files.
    p.save(str(tmp_path / "saved"))
    bigrams.unlink()
    words.unlink()
    assert Pipeline.load(str(tmp_path / "saved")).predict(ZH_TEXTS) == p.predict(ZH_TEXTS)


def test_ensemble_members_draw_their_own_rows_beside_pretrained_bigrams(tmp_path):
    bigrams = tmp_path / "bigrams.vec"
    _write_vectors(bigrams, {"张伟": [0.5, -0.5, 0.25, 1.0]})
    cfg = lexicon_config(tmp_path, bigrams={"pretrained": str(bigrams)}, learning_rate=1e-9, ensemble=2)
    p = Pipeline.from_config(cfg).fit(ZH_TEXTS, ZH_SPANS, epochs=1)
    model = p.stage("model")
    tables = [model.model_.get_layer(f"member_{i}").get_layer("bigram_embedding").get_weights()[0] for i in (1, 2)]
    bigram_items = model.feature("bigrams").bigrams_
    row = bigram_items.index("张伟")
    for table in tables:  # (training moved them by ~1e-9)
        np.testing.assert_allclose(table[row], [0.5, -0.5, 0.25, 1.0], atol=1e-5)
    other = [i for i in range(1, len(bigram_items)) if i != row]
    assert not np.allclose(tables[0][other], tables[1][other], atol=1e-3)


def test_pretrained_feature_vectors_are_checked(tmp_path):
    vectors = tmp_path / "v.vec"
    _write_vectors(vectors, {"张伟": [0.5, -0.5, 0.25]})
    with pytest.raises(ConfigError, match=r"features.bigrams.dim must match the 3-dimensional vectors in .*v\.vec"):
        Pipeline.from_config(lexicon_config(tmp_path, bigrams={"pretrained": str(vectors)})).fit(ZH_TEXTS, ZH_SPANS, epochs=1)
    with pytest.raises(ConfigError, match="features.lexicon.pretrained must be the path of an existing vectors file"):
        Pipeline.from_config(lexicon_config(tmp_path, lexicon={"dim": 3, "pretrained": str(tmp_path / "no.vec")})).fit(
            ZH_TEXTS, ZH_SPANS, epochs=1)
    with pytest.raises(ConfigError, match="features.lexicon.pretrained needs dim > 0"):
        RNNTagger(features={"lexicon": {"pretrained": str(vectors)}})
