// A jspurefix acceptor acting as an exchange for tickdb's FIX venue adapter: a NewOrderSingle
// is acknowledged (ExecType 0) and, when its price is at least 100, filled at once in two
// trades; a cancel and a replace are accepted. Each application message received is printed
// as one JSON line ({"type", "fields", "possdup"}); a NewOrderSingle whose ClOrdID it already
// has is answered with its state (ExecType I), never a second order.
// Usage: node venue.js '{"port","sender","target"}'
'use strict'
require('reflect-metadata')
const { SessionLauncher } = require('jspurefix/dist/runtime')
const { AsciiSession } = require('jspurefix/dist/transport')
const { JsFixWinstonLogFactory, WinstonLogger } = require('jspurefix/dist/config')

const args = JSON.parse(process.argv[2])
const orders = new Map()
let execs = 0

function emit (type, fields, possdup) {
  process.stdout.write(JSON.stringify({ type, fields, possdup }) + '\n')
}

class VenueSession extends AsciiSession {
  report (o, execType, extra) {
    execs += 1
    this.send('8', {
      OrderID: o.id,
      ClOrdID: o.clordid,
      OrigClOrdID: extra.orig,
      ExecID: 'JS' + execs,
      ExecType: execType,
      OrdStatus: o.status,
      Instrument: { Symbol: o.sym },
      Side: o.side,
      OrderQtyData: { OrderQty: o.qty },
      OrdType: '2',
      Price: o.price,
      LeavesQty: ['0', '1', '5'].includes(o.status) ? o.qty - o.cum : 0,
      CumQty: o.cum,
      AvgPx: o.cum ? o.price : 0,
      LastQty: extra.lastQty,
      LastPx: extra.lastQty ? o.price : undefined,
      TransactTime: new Date()
    })
  }

  onApplicationMsg (msgType, view) {
    const m = view.toObject()
    emit(msgType, m, view.getString(43) === 'Y')
    if (msgType === 'D') {
      const known = orders.get(m.ClOrdID)
      if (known) {
        this.report(known, 'I', {})
        return
      }
      const o = {
        id: 'JSO' + (orders.size + 1),
        clordid: m.ClOrdID,
        sym: m.Instrument.Symbol,
        side: m.Side,
        qty: m.OrderQtyData.OrderQty,
        price: m.Price,
        cum: 0,
        status: '0'
      }
      orders.set(o.clordid, o)
      this.report(o, '0', {})
      if (o.price >= 100) {
        const first = Math.floor(o.qty / 2)
        o.cum = first
        o.status = '1'
        this.report(o, 'F', { lastQty: first })
        o.cum = o.qty
        o.status = '2'
        this.report(o, 'F', { lastQty: o.qty - first })
      }
    } else if (msgType === 'F' || msgType === 'G') {
      const o = orders.get(m.OrigClOrdID)
      if (!o || ['2', '4'].includes(o.status)) {
        this.send('9', {
          OrderID: o ? o.id : 'NONE',
          ClOrdID: m.ClOrdID,
          OrigClOrdID: m.OrigClOrdID,
          OrdStatus: o ? o.status : '8',
          CxlRejResponseTo: msgType === 'F' ? '1' : '2',
          CxlRejReason: o ? 0 : 1
        })
        return
      }
      const orig = o.clordid
      orders.set(m.ClOrdID, o)
      o.clordid = m.ClOrdID
      if (msgType === 'F') {
        o.status = '4'
        this.report(o, '4', { orig })
      } else {
        o.qty = m.OrderQtyData.OrderQty
        o.price = m.Price
        o.status = '0'
        this.report(o, '5', { orig })
      }
    }
  }

  onReady () { emit('ready', {}, false) }
  onLogon () { return true }
  onStopped () { emit('stopped', {}, false) }
  onDecoded () {}
  onEncoded () {}
}

class Launcher extends SessionLauncher {
  constructor () {
    const config = {
      application: {
        reconnectSeconds: 10,
        type: 'acceptor',
        name: 'tickdb_venue',
        tcp: { host: '127.0.0.1', port: args.port },
        protocol: 'ascii',
        dictionary: 'repo44'
      },
      Username: '',
      Password: '',
      EncryptMethod: 0,
      ResetSeqNumFlag: false,
      HeartBtInt: 30,
      SenderCompId: args.sender,
      TargetCompID: args.target,
      BeginString: 'FIX.4.4'
    }
    super(null, config, new JsFixWinstonLogFactory(WinstonLogger.consoleOptions('error')))
  }

  makeFactory () {
    return { makeSession: (c) => new VenueSession(c) }
  }
}

emit('listening', {}, false)
new Launcher().run().catch((e) => {
  console.error(e)
  process.exit(1)
})
