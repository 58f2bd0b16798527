"""Item texts for prompts, read from a RecBole dataset's ``.item`` fields."""
from recbole.utils import FeatureType


def _field_texts(dataset, field):
    """One string per internal item id for ``field`` (token, token_seq or float)."""
    values = dataset.item_feat[field]
    field_type = dataset.field2type[field]
    if field_type == FeatureType.TOKEN:
        id2token = dataset.field2id_token[field]
        return [str(id2token[int(v)]) if int(v) else "" for v in values]
    if field_type == FeatureType.TOKEN_SEQ:
        id2token = dataset.field2id_token[field]
        return [" ".join(str(id2token[int(t)]) for t in row if int(t)) for row in values]
    if field_type in (FeatureType.FLOAT, FeatureType.FLOAT_SEQ):
        return [" ".join(f"{x:g}" for x in row.reshape(-1).tolist()) for row in values]
    raise ValueError(f"Item field [{field}] has unsupported type {field_type}.")


class ItemTexts:
    """Title, metadata and image description of every item, indexed by RecBole's internal id.

    Args:
        dataset: a RecBole dataset with item features loaded.
        title_field: the ``.item`` field with item titles (e.g. ``movie_title``, ``title``).
        meta_fields: further ``.item`` fields appended in parentheses (e.g. ``[release_year, class]``).
        image_texts: item token -> image description; items without one get none.
    """

    def __init__(self, dataset, title_field, meta_fields=(), image_texts=None):
        item_fields = [] if dataset.item_feat is None else list(dataset.item_feat.interaction)
        for field in [title_field, *meta_fields]:
            if field not in item_fields:
                raise ValueError(
                    f"Dataset [{dataset.dataset_name}] has no item field [{field}] (loaded item fields: "
                    f"{item_fields or 'none'}). Add it to `load_col: {{item: [...]}}` or set "
                    "`title_field` / `item_meta_fields` to fields of its .item file."
                )
        self.item_tokens = [str(token) for token in dataset.field2id_token[dataset.iid_field]]
        self.titles = _field_texts(dataset, title_field)
        meta = [_field_texts(dataset, field) for field in meta_fields]
        self.meta = ["; ".join(v for v in values if v) for values in zip(*meta)] if meta else [""] * len(self.titles)
        image_texts = image_texts or {}
        self.image_texts = [image_texts.get(token, "") for token in self.item_tokens]

    def __len__(self):
        return len(self.titles)

    def title(self, item_id):
        """The item's title as prompts list it and answers name it."""
        return self.titles[item_id] or "(untitled)"

    def text(self, item_id, with_image=True, after_title=""):
        """``title (meta) | image: description`` for one internal item id; ``after_title`` (e.g. the
        item's hybrid token) follows the title, separated by a space."""
        text = self.title(item_id) + (f" {after_title}" if after_title else "")
        if self.meta[item_id]:
            text += f" ({self.meta[item_id]})"
        if with_image and self.image_texts[item_id]:
            text += f" | image: {self.image_texts[item_id]}"
        return text

    def entry(self, item_id, with_image=True, after_title=""):
        """``(external item token, text)`` as the prompt builders take it."""
        return self.item_tokens[item_id], self.text(item_id, with_image, after_title)
