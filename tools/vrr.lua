-- Wireshark/tshark dissector for vnet's VRR wire format (docs/vrr-wire.md).
-- Use: tshark -X lua_script:tools/vrr.lua -r capture.pcap
-- Ethertype 0x886F is registered to Microsoft (Wireshark shows "MS NLB heartbeat");
-- this dissector takes the Ethertype over and checks the "VRR0" demux code first.

local vrr = Proto("vrr", "Virtual Ring Routing (vnet)")

local types = { [1] = "data", [2] = "hello", [3] = "setup_req", [4] = "setup",
                [5] = "setup_fail", [6] = "teardown", [7] = "dht", [8] = "merge" }
local nstates = { [1] = "linked", [2] = "pending" }
local dhtops = { [1] = "put", [2] = "get", [3] = "reply", [4] = "store", [5] = "replica",
                 [6] = "remove" }

local f = vrr.fields
f.demux = ProtoField.uint32("vrr.demux", "Demux code", base.HEX)
f.version = ProtoField.uint8("vrr.version", "Version")
f.type = ProtoField.uint8("vrr.type", "Type", base.DEC, types)
f.flags = ProtoField.uint8("vrr.flags", "Flags", base.HEX)
f.f_active = ProtoField.bool("vrr.flags.active", "Active", 8, nil, 0x01)
f.f_rep = ProtoField.bool("vrr.flags.rep", "Representative", 8, nil, 0x02)
f.f_auth = ProtoField.bool("vrr.flags.auth", "Hop MAC", 8, nil, 0x04)
f.f_enc = ProtoField.bool("vrr.flags.enc", "Encrypted", 8, nil, 0x08)
f.f_vset = ProtoField.bool("vrr.flags.vset", "Vset present", 8, nil, 0x10)
f.hop_limit = ProtoField.uint16("vrr.hop_limit", "Hop limit")
f.length = ProtoField.uint16("vrr.length", "Length")
f.next_header = ProtoField.uint16("vrr.next_header", "Next header", base.HEX)
f.seq = ProtoField.uint32("vrr.seq", "Hop sequence")
f.dst = ProtoField.ether("vrr.dst", "Destination")
f.origin = ProtoField.ether("vrr.origin", "Origin")
f.hop_src = ProtoField.ether("vrr.hop_src", "Hop source")
f.hello_seq = ProtoField.uint32("vrr.hello.seq", "Hello sequence")
f.rep = ProtoField.ether("vrr.hello.rep", "Representative")
f.rep_seq = ProtoField.uint32("vrr.hello.rep_seq", "Representative sequence")
f.nneigh = ProtoField.uint16("vrr.hello.count", "Neighbours")
f.neigh = ProtoField.ether("vrr.hello.neighbour", "Neighbour")
f.nstate = ProtoField.uint8("vrr.hello.state", "State", base.DEC, nstates)
f.quality = ProtoField.uint8("vrr.hello.quality", "Quality")
f.addr = ProtoField.ether("vrr.path.addr", "Proxy / endpoint A")
f.nvset = ProtoField.uint16("vrr.path.nvset", "Vset entries")
f.pid = ProtoField.uint32("vrr.path.pid", "Path id")
f.vset = ProtoField.ether("vrr.path.vset", "Vset member")
f.dht_op = ProtoField.uint8("vrr.dht.op", "DHT operation", base.DEC, dhtops)
f.dht_status = ProtoField.uint8("vrr.dht.status", "Status")
f.dht_req = ProtoField.uint32("vrr.dht.req", "Request id")
f.dht_key = ProtoField.ether("vrr.dht.key", "Key")
f.dht_value = ProtoField.bytes("vrr.dht.value", "Value")
f.mac = ProtoField.bytes("vrr.mac", "Hop MAC")

local ip_table = DissectorTable.get("ethertype")

function vrr.dissector(buf, pinfo, tree)
    if buf:len() < 36 or buf(0, 4):uint() ~= 0x56525230 then
        return 0
    end
    pinfo.cols.protocol = "VRR"
    local length = buf(8, 2):uint()
    local typ = buf(5, 1):uint()
    local flags = buf(6, 1):uint()
    local t = tree:add(vrr, buf(0, math.min(length, buf:len())))
    t:add(f.demux, buf(0, 4))
    t:add(f.version, buf(4, 1))
    t:add(f.type, buf(5, 1))
    local ft = t:add(f.flags, buf(6, 1))
    ft:add(f.f_active, buf(6, 1)); ft:add(f.f_rep, buf(6, 1)); ft:add(f.f_auth, buf(6, 1))
    ft:add(f.f_enc, buf(6, 1)); ft:add(f.f_vset, buf(6, 1))
    t:add(f.length, buf(8, 2))
    t:add(f.next_header, buf(10, 2))
    t:add(f.seq, buf(12, 4))
    t:add(f.dst, buf(16, 6))
    t:add(f.origin, buf(22, 6))
    t:add(f.hop_src, buf(28, 6))
    t:add(f.hop_limit, buf(34, 2))
    local name = types[typ] or "unknown"
    pinfo.cols.info = string.format("VRR %s %s -> %s", name, tostring(buf(22, 6):ether()),
                                    tostring(buf(16, 6):ether()))
    if length > buf:len() then
        t:add_expert_info(PI_MALFORMED, PI_ERROR, "truncated")
        return buf:len()
    end
    if typ == 2 and length >= 52 then
        t:add(f.hello_seq, buf(36, 4))
        t:add(f.rep, buf(40, 6))
        t:add(f.nneigh, buf(46, 2))
        t:add(f.rep_seq, buf(48, 4))
        local n = buf(46, 2):uint()
        for i = 0, n - 1 do
            local o = 52 + 8 * i
            if o + 8 > length then break end
            local e = t:add(f.neigh, buf(o, 6))
            e:add(f.nstate, buf(o + 6, 1))
            e:add(f.quality, buf(o + 7, 1))
        end
    elseif typ >= 3 and typ <= 6 and length >= 52 then
        t:add(f.addr, buf(36, 6))
        t:add(f.nvset, buf(42, 2))
        t:add(f.pid, buf(44, 4))
        local n = buf(42, 2):uint()
        if n ~= 0xFFFF then
            for i = 0, n - 1 do
                local o = 52 + 8 * i
                if o + 8 > length then break end
                t:add(f.vset, buf(o, 6))
            end
        end
    elseif typ == 7 and length >= 52 and bit.band(flags, 0x08) == 0 then
        t:add(f.dht_op, buf(36, 1))
        t:add(f.dht_status, buf(37, 1))
        t:add(f.dht_req, buf(40, 4))
        t:add(f.dht_key, buf(44, 6))
        if length > 52 then t:add(f.dht_value, buf(52, length - 52)) end
    elseif typ == 1 and length > 36 and bit.band(flags, 0x08) == 0 then
        local nh = buf(10, 2):uint()
        local d = ip_table:get_dissector(nh)
        if d ~= nil then
            d:call(buf(36, length - 36):tvb(), pinfo, tree)
        end
    end
    if bit.band(flags, 0x04) ~= 0 and buf:len() >= length + 16 then
        t:add(f.mac, buf(length, 16))
    end
    return buf:len()
end

ip_table:add(0x886F, vrr)
