"""Every model RecBole 1.2.1 registers runs through the plugin's ``run_recbole``, unchanged.

The variants (loss types, activations, stacking options, ...) are those of RecBole's own
``tests/model/test_model_auto.py`` at tag v1.2.1, plus the pre-training flows of
``test_model_manual.py`` (S3Rec) and of RaCT, and the two models RecBole leaves out
(GRU4RecKG, KSR: pre-trained entity embeddings). The dataset is written here in the shape
of RecBole's ``tests/test_data/test`` (users, items with features, a knowledge graph).
"""
import importlib.util
import os
import random

import numpy as np
import pytest
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model as get_recbole_model
from recbole.utils import get_trainer as get_recbole_trainer
from recbole.utils import init_seed

from recbole_mllmr1.optional_packages import MODEL_PACKAGES, MissingModelPackage
from recbole_mllmr1.quick_start import run_recbole
from recbole_mllmr1.utils import available_models
from tests.conftest import TINY_CONFIG, write_tiny_dataset

pytestmark = pytest.mark.slow

DATASET = "dropin"
EMBEDDING_SIZE = 64  # GRU4RecKG and KSR read pre-trained vectors of their embedding size

# RecBole's tests/model/test_model.yaml (v1.2.1), minus the data path.
BASE_CONFIG = {
    "dataset": DATASET,
    "epochs": 1,
    "state": "ERROR",
    "show_progress": False,
    "field_separator": "\t",
    "seq_separator": " ",
    "USER_ID_FIELD": "user_id",
    "ITEM_ID_FIELD": "item_id",
    "RATING_FIELD": "rating",
    "TIME_FIELD": "timestamp",
    "LABEL_FIELD": "label",
    "NEG_PREFIX": "neg_",
    "ITEM_LIST_LENGTH_FIELD": "item_length",
    "LIST_SUFFIX": "_list",
    "MAX_ITEM_LIST_LENGTH": 50,
    "POSITION_FIELD": "position_id",
    "HEAD_ENTITY_ID_FIELD": "head_id",
    "TAIL_ENTITY_ID_FIELD": "tail_id",
    "RELATION_ID_FIELD": "relation_id",
    "ENTITY_ID_FIELD": "entity_id",
    "load_col": {
        "inter": ["user_id", "item_id", "rating", "timestamp"],
        "user": ["user_id", "age", "gender", "occupation"],
        "item": ["item_id", "movie_title", "release_year", "class"],
        "link": ["item_id", "entity_id"],
        "kg": ["head_id", "relation_id", "tail_id"],
    },
    "normalize_all": True,
}

# GRU4RecKG and KSR read pre-trained entity and relation vectors, in the entity / relation
# id spaces of the KG. RecBole gives them no sequential defaults: the split is set here.
PRETRAINED_KG = {
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
    "additional_feat_suffix": ["ent", "rel"],
    "load_col": {**BASE_CONFIG["load_col"], "ent": ["ent_id", "ent_emb"], "rel": ["rel_id", "rel_emb"]},
    "alias_of_entity_id": ["ent_id"],
    "alias_of_relation_id": ["rel_id"],
    "preload_weight": {"ent_id": "ent_emb", "rel_id": "rel_emb"},
}

# One row per RecBole test: (name, config). From test_model_auto.py unless noted.
VARIANTS = [
    # general recommenders
    ("pop", {"model": "Pop"}),
    ("random", {"model": "Random"}),
    ("itemknn", {"model": "ItemKNN", "knn_method": "item"}),
    ("userknn", {"model": "ItemKNN", "knn_method": "user"}),
    ("asymitemknn", {"model": "AsymKNN", "knn_method": "item"}),
    ("asymuserknn", {"model": "AsymKNN", "knn_method": "user"}),
    ("bpr", {"model": "BPR"}),
    ("bpr_with_dns", {"model": "BPR", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": True, "candidate_num": 2}}),
    ("neumf", {"model": "NeuMF"}),
    ("convncf", {"model": "ConvNCF"}),
    ("dmf", {"model": "DMF"}),
    ("dmf_with_rating", {"model": "DMF", "inter_matrix_type": "rating"}),
    ("fism", {"model": "FISM"}),
    ("fism_with_split_to_and_alpha", {"model": "FISM", "split_to": 10, "alpha": 0.5}),
    ("nais", {"model": "NAIS"}),
    ("nais_with_concat", {"model": "NAIS", "algorithm": "concat", "split_to": 10, "alpha": 0.5, "beta": 0.1}),
    ("spectralcf", {"model": "SpectralCF"}),
    ("gcmc", {"model": "GCMC"}),
    ("gcmc_with_stack", {"model": "GCMC", "accum": "stack", "sparse_feature": False}),
    ("ngcf", {"model": "NGCF"}),
    ("lightgcn", {"model": "LightGCN"}),
    ("dgcf", {"model": "DGCF"}),
    ("line", {"model": "LINE"}),
    ("ease", {"model": "EASE"}),
    ("MultiDAE", {"model": "MultiDAE", "train_neg_sample_args": None}),
    ("MultiVAE", {"model": "MultiVAE", "train_neg_sample_args": None}),
    ("enmf", {"model": "ENMF", "train_neg_sample_args": None}),
    ("MacridVAE", {"model": "MacridVAE", "train_neg_sample_args": None}),
    ("CDAE", {"model": "CDAE", "train_neg_sample_args": None}),
    ("NNCF", {"model": "NNCF"}),
    ("RecVAE", {"model": "RecVAE", "train_neg_sample_args": None}),
    ("slimelastic", {"model": "SLIMElastic"}),
    ("SGL", {"model": "SGL"}),
    ("ADMMSLIM", {"model": "ADMMSLIM"}),
    ("SimpleX_with_mean", {"model": "SimpleX", "aggregator": "mean"}),
    ("SimpleX_with_user_attention", {"model": "SimpleX", "aggregator": "user_attention"}),
    ("SimpleX_with_self_attention", {"model": "SimpleX", "aggregator": "self_attention"}),
    ("NCEPLRec", {"model": "NCEPLRec"}),
    ("NCL", {"model": "NCL", "num_clusters": 100}),
    ("DiffRec", {"model": "DiffRec"}),
    ("TDiffRec", {"model": "DiffRec", "time-aware": True}),
    ("LDiffRec", {"model": "LDiffRec"}),
    ("LTDiffRec", {"model": "LDiffRec", "time-aware": True}),
    # context-aware recommenders
    ("lr", {"model": "LR", "threshold": {"rating": 4}}),
    ("fm", {"model": "FM", "threshold": {"rating": 4}}),
    ("nfm", {"model": "NFM", "threshold": {"rating": 4}}),
    ("deepfm", {"model": "DeepFM", "threshold": {"rating": 4}}),
    ("xdeepfm", {"model": "xDeepFM", "threshold": {"rating": 4}}),
    ("xdeepfm_with_direct", {"model": "xDeepFM", "threshold": {"rating": 4}, "direct": True}),
    ("afm", {"model": "AFM", "threshold": {"rating": 4}}),
    ("fnn", {"model": "FNN", "threshold": {"rating": 4}}),
    ("pnn", {"model": "PNN", "threshold": {"rating": 4}}),
    ("pnn_with_use_inner_and_use_outer", {"model": "PNN", "threshold": {"rating": 4}, "use_inner": True, "use_outer": True}),
    ("pnn_without_use_inner_and_use_outer", {"model": "PNN", "threshold": {"rating": 4}, "use_inner": False, "use_outer": False}),
    ("dssm", {"model": "DSSM", "threshold": {"rating": 4}}),
    ("widedeep", {"model": "WideDeep", "threshold": {"rating": 4}}),
    ("autoint", {"model": "AutoInt", "threshold": {"rating": 4}}),
    ("ffm", {"model": "FFM", "threshold": {"rating": 4}}),
    ("fwfm", {"model": "FwFM", "threshold": {"rating": 4}}),
    ("dcn", {"model": "DCN", "threshold": {"rating": 4}}),
    ("dcnv2", {"model": "DCNV2", "threshold": {"rating": 4}}),
    ("xgboost", {"model": "XGBoost", "threshold": {"rating": 4}, "xgb_params": {"booster": "gbtree", "objective": "binary:logistic", "eval_metric": ["auc", "logloss"]}, "xgb_num_boost_round": 1}),
    ("lightgbm", {"model": "LightGBM", "threshold": {"rating": 4}, "lgb_params": {"boosting": "gbdt", "objective": "binary", "metric": ["auc", "binary_logloss"]}, "lgb_num_boost_round": 1}),
    ("fignn", {"model": "FiGNN", "threshold": {"rating": 4}}),
    ("kd_dagfm", {"model": "KD_DAGFM", "threshold": {"rating": 4}}),
    ("eulernet", {"model": "EulerNet", "threshold": {"rating": 4}}),
    # sequential recommenders
    ("din", {"model": "DIN"}),
    ("dien", {"model": "DIEN"}),
    ("fpmc", {"model": "FPMC"}),
    ("gru4rec", {"model": "GRU4Rec", "train_neg_sample_args": None}),
    ("gru4reccpr", {"model": "GRU4RecCPR", "train_neg_sample_args": None}),
    ("gru4rec_with_BPR_loss", {"model": "GRU4Rec", "loss_type": "BPR"}),
    ("narm", {"model": "NARM", "train_neg_sample_args": None}),
    ("narm_with_BPR_loss", {"model": "NARM", "loss_type": "BPR"}),
    ("stamp", {"model": "STAMP", "train_neg_sample_args": None}),
    ("stamp_with_BPR_loss", {"model": "STAMP", "loss_type": "BPR"}),
    ("caser", {"model": "Caser", "MAX_ITEM_LIST_LENGTH": 10, "reproducibility": False, "train_neg_sample_args": None}),
    ("caser_with_BPR_loss", {"model": "Caser", "loss_type": "BPR", "MAX_ITEM_LIST_LENGTH": 10, "reproducibility": False}),
    ("nextitnet", {"model": "NextItNet", "reproducibility": False, "train_neg_sample_args": None}),
    ("nextitnet_with_BPR_loss", {"model": "NextItNet", "loss_type": "BPR", "reproducibility": False}),
    ("transrec", {"model": "TransRec"}),
    ("sasrec", {"model": "SASRec", "train_neg_sample_args": None}),
    ("sasreccpr", {"model": "SASRecCPR", "train_neg_sample_args": None}),
    ("sasrec_with_BPR_loss_and_relu", {"model": "SASRec", "loss_type": "BPR", "hidden_act": "relu"}),
    ("sasrec_with_BPR_loss_and_sigmoid", {"model": "SASRec", "loss_type": "BPR", "hidden_act": "sigmoid"}),
    ("srgnn", {"model": "SRGNN", "MAX_ITEM_LIST_LENGTH": 3, "train_neg_sample_args": None}),
    ("srgnn_with_BPR_loss", {"model": "SRGNN", "loss_type": "BPR", "MAX_ITEM_LIST_LENGTH": 3}),
    ("gcsan", {"model": "GCSAN", "MAX_ITEM_LIST_LENGTH": 3, "train_neg_sample_args": None}),
    ("gcsan_with_BPR_loss_and_tanh", {"model": "GCSAN", "loss_type": "BPR", "hidden_act": "tanh", "MAX_ITEM_LIST_LENGTH": 3}),
    ("gru4recf", {"model": "GRU4RecF", "train_neg_sample_args": None}),
    ("gru4recf_with_max_pooling", {"model": "GRU4RecF", "pooling_mode": "max", "train_neg_sample_args": None}),
    ("gru4recf_with_sum_pooling", {"model": "GRU4RecF", "pooling_mode": "sum", "train_neg_sample_args": None}),
    ("sasrecf", {"model": "SASRecF", "train_neg_sample_args": None}),
    ("sasrecf_with_max_pooling", {"model": "SASRecF", "pooling_mode": "max", "train_neg_sample_args": None}),
    ("sasrecf_with_sum_pooling", {"model": "SASRecF", "pooling_mode": "sum", "train_neg_sample_args": None}),
    ("hrm", {"model": "HRM", "train_neg_sample_args": None}),
    ("hrm_with_BPR_loss", {"model": "HRM", "loss_type": "BPR"}),
    ("npe", {"model": "NPE", "train_neg_sample_args": None}),
    ("npe_with_BPR_loss", {"model": "NPE", "loss_type": "BPR"}),
    ("shan", {"model": "SHAN", "train_neg_sample_args": None, "transform": "inverse_itemseq"}),
    ("shan_with_BPR_loss", {"model": "SHAN", "loss_type": "BPR", "transform": "inverse_itemseq"}),
    ("hgn", {"model": "HGN", "train_neg_sample_args": None}),
    ("hgn_with_BPR_loss", {"model": "HGN", "loss_type": "BPR"}),
    ("fossil", {"model": "FOSSIL", "train_neg_sample_args": None}),
    ("repeat_net", {"model": "RepeatNet"}),
    ("fdsa", {"model": "FDSA", "train_neg_sample_args": None}),
    ("fdsa_with_max_pooling", {"model": "FDSA", "pooling_mode": "max", "train_neg_sample_args": None}),
    ("fdsa_with_sum_pooling", {"model": "FDSA", "pooling_mode": "sum", "train_neg_sample_args": None}),
    ("bert4rec", {"model": "BERT4Rec", "train_neg_sample_args": None, "transform": "mask_itemseq"}),
    ("bert4rec_with_BPR_loss_and_swish", {"model": "BERT4Rec", "loss_type": "BPR", "hidden_act": "swish", "transform": "mask_itemseq"}),
    ("lightsans", {"model": "LightSANs", "train_neg_sample_args": None}),
    ("lightsans_with_BPR_loss", {"model": "LightSANs", "loss_type": "BPR"}),
    ("sine", {"model": "SINE", "train_neg_sample_args": None}),
    ("sine_with_BPR_loss", {"model": "SINE", "loss_type": "BPR"}),
    ("sine_with_NLL_loss", {"model": "SINE", "train_neg_sample_args": None, "loss_type": "NLL"}),
    ("core_trm", {"model": "CORE", "train_neg_sample_args": None, "dnn_type": "trm"}),
    ("core_ave", {"model": "CORE", "train_neg_sample_args": None, "dnn_type": "ave"}),
    ("fea_rec", {"model": "FEARec", "train_neg_sample_args": None}),
    # sequential recommenders RecBole tests by hand (test_model_manual.py) or not at all
    ("gru4reckg", {"model": "GRU4RecKG", "train_neg_sample_args": None, **PRETRAINED_KG}),
    # knowledge-aware recommenders
    ("cke", {"model": "CKE"}),
    ("cfkg", {"model": "CFKG"}),
    ("cfkg_with_transe", {"model": "CFKG", "loss_function": "transe"}),
    ("ktup", {"model": "KTUP", "train_rec_step": 1, "train_kg_step": 1, "epochs": 2}),
    ("ktup_with_L1_flag", {"model": "KTUP", "use_st_gumbel": False, "L1_flag": True}),
    ("kgat", {"model": "KGAT"}),
    ("kgat_with_gcn", {"model": "KGAT", "aggregator_type": "gcn"}),
    ("kgat_with_graphsage", {"model": "KGAT", "aggregator_type": "graphsage"}),
    ("ripplenet", {"model": "RippleNet"}),
    ("mkr", {"model": "MKR"}),
    ("mkr_without_use_inner_product", {"model": "MKR", "use_inner_product": False}),
    ("kgcn", {"model": "KGCN"}),
    ("kgcn_with_neighbor", {"model": "KGCN", "aggregator": "neighbor"}),
    ("kgcn_with_concat", {"model": "KGCN", "aggregator": "concat"}),
    ("kgnnls", {"model": "KGNNLS"}),
    ("kgnnls_with_neighbor", {"model": "KGNNLS", "aggregator": "neighbor"}),
    ("kgnnls_with_concat", {"model": "KGNNLS", "aggregator": "concat"}),
    ("mcclk", {"model": "MCCLK"}),
    ("kgin", {"model": "KGIN"}),
]

# Models trained in stages, each stage a run that saves the model the next one loads.
STAGED_VARIANTS = [
    ("s3rec", "S3Rec", ["pretrain", "finetune"], {"train_neg_sample_args": None}),
    ("ract", "RaCT", ["actor_pretrain", "critic_pretrain", "finetune"], {"train_neg_sample_args": None}),
]


def write_recbole_test_dataset(folder, n_users=120, n_items=120, per_user=(5, 15), seed=0):
    """``<folder>/dropin/dropin.{inter,user,item,kg,link,ent,rel}`` in RecBole's test-data shape.

    RecBole's defaults assume a catalog of at least 100 items (RaCT's critic reads NDCG@100,
    GRU4RecCPR / SASRecCPR rerank 100 candidates), and DGCF samples as many users as items.
    """
    rng = random.Random(seed)
    path = os.path.join(folder, DATASET)
    os.makedirs(path, exist_ok=True)

    def write(suffix, header, rows):
        with open(os.path.join(path, f"{DATASET}.{suffix}"), "w") as out:
            out.write("\t".join(header) + "\n")
            out.writelines("\t".join(map(str, row)) + "\n" for row in rows)

    inter = []
    for user in range(1, n_users + 1):
        items = rng.sample(range(1, n_items + 1), rng.randint(*per_user))
        inter += [(user, item, rng.randint(1, 5), 880_000_000 + user * 1000 + step) for step, item in enumerate(items)]
    write("inter", ["user_id:token", "item_id:token", "rating:float", "timestamp:float"], inter)
    write("user", ["user_id:token", "age:token", "gender:token", "occupation:token"],
          [(u, rng.choice([18, 25, 35, 45]), rng.choice("MF"), rng.choice(["student", "writer", "other"])) for u in range(1, n_users + 1)])
    write("item", ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
          [(i, f"Film {i}", rng.randint(1990, 1999), " ".join(rng.sample(["Action", "Comedy", "Drama", "Horror"], 2))) for i in range(1, n_items + 1)])
    # Items 1..n_items-5 link to entities; extra entities exist only in the graph.
    n_entities, relations = n_items + 20, ["film.genre", "film.director", "film.actor"]
    write("link", ["item_id:token", "entity_id:token"], [(i, f"m.{i}") for i in range(1, n_items - 4)])
    write("kg", ["head_id:token", "relation_id:token", "tail_id:token"],
          [(f"m.{rng.randint(1, n_entities)}", rng.choice(relations), f"m.{rng.randint(1, n_entities)}") for _ in range(300)])
    vector = lambda: " ".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(EMBEDDING_SIZE))  # noqa: E731
    write("ent", ["ent_id:token", "ent_emb:float_seq"], [(f"m.{e}", vector()) for e in range(1, n_entities + 1)])
    write("rel", ["rel_id:token", "rel_emb:float_seq"], [(r, vector()) for r in relations])
    return folder


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("dropin")
    data_path = write_recbole_test_dataset(str(root))
    path = root / "test_model.yaml"
    path.write_text(yaml.safe_dump({**BASE_CONFIG, "data_path": data_path, "checkpoint_dir": str(root / "saved")}))
    return str(path)


def _missing_packages(model):
    return [p for p in MODEL_PACKAGES.get(model, ()) if importlib.util.find_spec(p) is None]


def test_the_variants_cover_every_model_recbole_registers():
    covered = {config["model"] for _, config in VARIANTS} | {model for _, model, _, _ in STAGED_VARIANTS} | {KSR["model"]}
    recbole_models = set(available_models()) - {"MLLMRecR1"}
    assert recbole_models - covered == set()


@pytest.mark.parametrize("config_dict", [c for _, c in VARIANTS], ids=[name for name, _ in VARIANTS])
def test_recbole_model_runs_through_run_recbole(config_file, config_dict):
    missing = _missing_packages(config_dict["model"])
    if missing:
        with pytest.raises(MissingModelPackage, match=rf"model \[{config_dict['model']}\] needs the package\(s\) {missing[0]}"):
            run_recbole(config_dict=config_dict, config_file_list=[config_file], saved=False)
        return
    result = run_recbole(config_dict=config_dict, config_file_list=[config_file], saved=False)
    assert result["test_result"] and all(np.isfinite(v) for v in result["test_result"].values())


@pytest.mark.parametrize("name, model, stages, extra", STAGED_VARIANTS, ids=[v[0] for v in STAGED_VARIANTS])
def test_staged_recbole_model_runs_through_run_recbole(config_file, name, model, stages, extra):
    checkpoint_dir = os.path.join(os.path.dirname(config_file), "saved", name)
    pre_model_path = ""
    for stage in stages:
        config_dict = {"model": model, "train_stage": stage, "pre_model_path": pre_model_path, "checkpoint_dir": checkpoint_dir,
                       "save_step": 1, "pretrain_epochs": 1, **extra}
        result = run_recbole(config_dict=config_dict, config_file_list=[config_file], saved=False)
        saved = sorted(f for f in os.listdir(checkpoint_dir) if f.endswith(".pth")) if os.path.isdir(checkpoint_dir) else []
        pre_model_path = os.path.join(checkpoint_dir, saved[-1]) if saved else pre_model_path
    assert result["test_result"] and all(np.isfinite(v) for v in result["test_result"].values())


# KSR multiplies its float32 sequence output by its relation matrix, which it takes as
# float64 from RecBole's preloaded weights (ksr.py:92, used at :153): it fails in RecBole
# 1.2.1 itself, whatever the stack. The drop-in must fail the same way, no more.
KSR = {"model": "KSR", "train_neg_sample_args": None, **PRETRAINED_KG}


def test_ksr_fails_in_recbole_itself_and_identically_through_the_plugin(config_file):
    with pytest.raises(RuntimeError, match="same dtype") as in_recbole:
        recbole_pipeline(KSR, config_file)
    with pytest.raises(RuntimeError, match="same dtype") as in_plugin:
        run_recbole(config_dict=KSR, config_file_list=[config_file], saved=False)
    assert str(in_plugin.value) == str(in_recbole.value)


def test_mllmrecr1_runs_through_run_recbole(tmp_path, default_llm_dir):
    data_path = write_tiny_dataset(str(tmp_path))
    config_dict = {**TINY_CONFIG, "data_path": data_path, "checkpoint_dir": str(tmp_path / "saved"), "eval_user_sample": 4,
                   "llm_path": default_llm_dir}
    result = run_recbole(model="MLLMRecR1", dataset="tiny", config_dict=config_dict, saved=False)
    assert 0.0 <= result["test_result"]["hit@1"] <= 1.0


def recbole_pipeline(config_dict, config_file):
    """RecBole's own ``recbole.quick_start.run_recbole``, step by step (that module imports ray,
    broken on numpy 2): RecBole's Config, data preparation, model and trainer."""
    config = RecBoleConfig(config_dict=config_dict, config_file_list=[config_file])
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_recbole_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_recbole_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    return trainer.evaluate(test_data, load_best_model=False, show_progress=False)


@pytest.mark.parametrize("config_dict", [
    {"model": "SASRec", "loss_type": "BPR"},
    {"model": "SASRec", "loss_type": "CE", "train_neg_sample_args": None},
    {"model": "LightGCN"},
    {"model": "BPR"},
], ids=["sasrec_bpr", "sasrec_ce", "lightgcn", "bpr"])
def test_plugin_metrics_equal_recbole_pipeline(config_file, config_dict):
    config_dict = {**config_dict, "epochs": 2}
    plugin = run_recbole(config_dict=config_dict, config_file_list=[config_file], saved=False)["test_result"]
    assert plugin == recbole_pipeline(config_dict, config_file)
