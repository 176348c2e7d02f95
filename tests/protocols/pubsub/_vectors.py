"""StrictSign vectors made with js-libp2p (@libp2p/crypto 5.1.23, @libp2p/peer-id 6.0.15):
the ``Message`` protobuf written field by field from the spec (from, data, seqno, topic), signed
over ``b"libp2p-pubsub:"`` + those bytes with the js key. seqno 7, data ``b"hello pubsub"``, topic
``test-topic``. Ed25519 from the seed 0x07 * 32 (deterministic); secp256k1 and RSA from fresh keys
(only their public key is kept: the RSA peer ID is a hash, so such messages carry ``key``).

Then whole RPCs made by js-libp2p gossipsub itself."""

from __future__ import annotations

import attrs


@attrs.frozen
class SignedVector:
    label: str
    peer_id: str
    public_key: bytes
    unsigned: bytes
    signature: bytes
    private_key: bytes | None = None


VECTORS = (
    SignedVector(
        label="ed25519",
        peer_id="12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7",
        public_key=bytes.fromhex(
            "08011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        ),
        unsigned=bytes.fromhex(
            "0a26002408011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c120c6865"
            "6c6c6f207075627375621a080000000000000007220a746573742d746f706963"
        ),
        signature=bytes.fromhex(
            "fcb1d49463ca60ad58fb2f273492e2f56c24bfc88f256e0a4022016d6e173b71d1b93eb0c74f2a2e99458445"
            "0ab6f6d080ea7c8f22ea5b11ec484f2681e4e705"
        ),
        private_key=bytes.fromhex(
            "080112400707070707070707070707070707070707070707070707070707070707070707ea4a6c63e29c520a"
            "bef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        ),
    ),
    SignedVector(
        label="secp256k1",
        peer_id="16Uiu2HAm3xWrVgYeQT4hBHa45af4g1Y1aDwonQonFWVfLyub1THS",
        public_key=bytes.fromhex(
            "08021221027ec42e8fd7ac4417ebde0004d527d3a0019c92a062785c3feabdfc47b9e21181"
        ),
        unsigned=bytes.fromhex(
            "0a27002508021221027ec42e8fd7ac4417ebde0004d527d3a0019c92a062785c3feabdfc47b9e21181120c68"
            "656c6c6f207075627375621a080000000000000007220a746573742d746f706963"
        ),
        signature=bytes.fromhex(
            "3045022100af8ac52d7dfadc403fae89760d069fd2f9fafe4a4dd3f5c83e05af222b92de9a02207b2f6b3867"
            "ca55d205128579e2937704cd03fda696364b0320d9d8418713b8eb"
        ),
    ),
    SignedVector(
        label="rsa",
        peer_id="QmXGvnGj5m99RMUqAwCkwHRW2r4nZqb4yso2pqvUuJrhBm",
        public_key=bytes.fromhex(
            "080012a60230820122300d06092a864886f70d01010105000382010f003082010a0282010100a29868112fce"
            "645d94adae461e375e1c741a6bfbf12a43021bc698e2dbc4b2b4f2b9541497b02ce4bbabc8015fc145cfc35c"
            "806d76749e3331085365b48379c006fee88391597d61c9dbc49141b5b79b51d3eaa7932d9f08b1af314fd530"
            "2163a6d802f6eac97fd4d9c22b40dc6a7ad0d25fde4781dcb0dad2136b63c4a9753079fb044f95f1bc5a00fa"
            "2a293416381e571167a6793d59c0eb533efa776cc493d082a73e12987f59fff3051763ea58e5892f1de74463"
            "5e27dbf03d5a87a63f1943191a591d8575da5f0177140484ef29f7fcc16694bdb553d6a7fa84ae23585a0515"
            "c5084754d6500ea598086afa281badc006cfa5b67c7ce2c86a3c30b1e5030203010001"
        ),
        unsigned=bytes.fromhex(
            "0a22122084c508145d43056ace3861011c30791187b615cba3198ac74bd7e887bfe4f388120c68656c6c6f20"
            "7075627375621a080000000000000007220a746573742d746f706963"
        ),
        signature=bytes.fromhex(
            "4a08b5817b4fb01b74f84ecfb0b00cf42f105a050761ceb42324488e54e9c44af5e210649762b305d1c2f38b"
            "e4e18c8ca6265badbd3f562a7a03205ee75e4db5b8c18dfddaee81b171ea1924a3aa880ef87e7612f66cef88"
            "4f653e5fbd81ab72a2e404ab86aa06299b561870b326ef53a96a8dc2b1c19156f49da978479aceeba416e18e"
            "290e06778e7fe73766915e630d1bf7beca729fc919964fb827a2342f45fbfae28d78b9047d656f328f423cf9"
            "10c76f4a9350b40a4e149c456cd73de0e0e2c6efc68e4e68d42b032ded438a888f15bd1942fa1857beb506c0"
            "5e12b9574912b01a0d052627a039ce8a20420f084dbd725ed7393178e903e66c66460ed4"
        ),
    ),
)


# An RPC written by @libp2p/gossipsub 17.1.1 itself (its protons ``RPC.encode``), holding a message
# signed by its ``buildRawMessage`` with the Ed25519 key of seed 0x09 * 32 (js always sends
# ``key``), two subscription changes and one control message of each kind; ``JS_MESSAGE_ID`` is
# what its default ``msgIdFnStrictSign`` gives for that message.
JS_RPC = bytes.fromhex(
    "0a0c080112086a732d746f7069630a07080012036f6c6412b3010a26002408011220fd1724385aa0c75b64fb"
    "78cd602fa1d991fdebf76b13c58ed702eac835e9f618120d68656c6c6f2066726f6d206a731a0818eced5aeb"
    "72e3c122086a732d746f7069632a40b72e593e9aaa11b2f2945c6452c277ef951ba34eac562433ac153ae0b7"
    "bfb6bd94ff78c3b3abdb19a5f78319f8a76547b1d6cfb7ee2f598f2cc9ca63bc59c308322408011220fd1724"
    "385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f6181a610a110a086a732d746f70696312"
    "02010212010312030a01041a0a0a086a732d746f70696322350a036f6c64122c0a26002408011220ed4928c6"
    "28d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d112020707183c2a040a020506"
)
JS_FROM = "12D3KooWSrKnMZUcSxK8G7wmBbXdU8nFEfWGhLu6H8xjn8LmCSJb"
JS_PX_PEER = "12D3KooWRndVhVZPCiQwHBBBdg769GyrPUW13zxwqQyf9r3ANaba"
JS_SEQNO = bytes.fromhex("18eced5aeb72e3c1")
JS_MESSAGE_ID = bytes.fromhex(
    "08011220fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f61818eced5aeb72e3c1"
)
# A StrictNoSign message (only data and topic) and its js ID (``msgIdFnStrictNoSign``: SHA-256).
JS_NOSIGN_RPC = bytes.fromhex("1215120d68656c6c6f2066726f6d206a732204616e6f6e")
JS_NOSIGN_ID = bytes.fromhex("b3ce21484fc2cc73c31c2bd7b232ba0d6890418aa0b95f77c05160b777ef4c39")
