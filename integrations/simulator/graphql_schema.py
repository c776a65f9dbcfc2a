"""The subset of Shopify's GraphQL Admin schema the simulator serves (names as on Shopify)."""

from integrations.simulator.store import SUBSCRIBABLE_TOPICS, topic_enum

_CONNECTION_ARGS = "first: Int, after: String, last: Int, before: String, reverse: Boolean = false"


def _connection(node: str) -> str:
    return f"""
type {node}Connection {{ edges: [{node}Edge!]! nodes: [{node}!]! pageInfo: PageInfo! }}
type {node}Edge {{ cursor: String! node: {node}! }}
"""


SDL = (
    """
schema { query: QueryRoot mutation: Mutation }

"Makes a mutation safe to retry: a repeated key returns the original result."
directive @idempotent(key: String!) on FIELD

scalar DateTime
scalar Money
scalar Decimal
scalar HTML
scalar URL
scalar UnsignedInt64

interface Node { id: ID! }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }
enum CountPrecision { EXACT AT_LEAST }
type Count { count: Int! precision: CountPrecision! }
enum CurrencyCode { USD }
type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type MoneyBag { shopMoney: MoneyV2! presentmentMoney: MoneyV2! }

enum ProductStatus { ACTIVE ARCHIVED DRAFT }
enum ProductVariantInventoryPolicy { DENY CONTINUE }
enum ProductSortKeys { ID TITLE CREATED_AT UPDATED_AT }
enum ProductVariantSortKeys { ID SKU TITLE CREATED_AT UPDATED_AT }
enum InventoryItemSortKeys { ID CREATED_AT UPDATED_AT }
enum CustomerSortKeys { ID CREATED_AT UPDATED_AT }
enum OrderSortKeys { ID CREATED_AT UPDATED_AT PROCESSED_AT }
enum LocationSortKeys { ID NAME }

type SelectedOption { name: String! value: String! }

type Product implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  title: String!
  handle: String!
  descriptionHtml: HTML!
  bodyHtml: String @deprecated(reason: "Use `descriptionHtml` instead.")
  vendor: String!
  productType: String!
  status: ProductStatus!
  tags: [String!]!
  createdAt: DateTime!
  updatedAt: DateTime!
  publishedAt: DateTime
  totalInventory: Int!
  tracksInventory: Boolean!
  variants(@ARGS@): ProductVariantConnection!
  variantsCount: Count
}

type ProductVariant implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  title: String!
  displayName: String!
  sku: String
  barcode: String
  price: Money!
  compareAtPrice: Money
  position: Int!
  inventoryPolicy: ProductVariantInventoryPolicy!
  inventoryQuantity: Int
  taxable: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  product: Product!
  inventoryItem: InventoryItem!
  selectedOptions: [SelectedOption!]!
}

type InventoryItem implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  sku: String
  tracked: Boolean!
  requiresShipping: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  unitCost: MoneyV2
  variant: ProductVariant!
  inventoryLevels(@ARGS@): InventoryLevelConnection!
  inventoryLevel(locationId: ID!): InventoryLevel
}

type InventoryQuantity { id: ID! name: String! quantity: Int! updatedAt: DateTime }

type InventoryLevel implements Node {
  id: ID!
  location: Location!
  item: InventoryItem!
  quantities(names: [String!]!): [InventoryQuantity!]!
  available: Int @deprecated(reason: "Use `quantities` with the name `available` instead.")
  createdAt: DateTime!
  updatedAt: DateTime!
}

type LocationAddress { address1: String address2: String city: String provinceCode: String countryCode: String zip: String }

type Location implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  name: String!
  isActive: Boolean!
  address: LocationAddress!
  inventoryLevels(@ARGS@): InventoryLevelConnection!
}

enum CustomerState { DECLINED DISABLED ENABLED INVITED }
type CustomerEmailAddress { emailAddress: String! marketingState: String! }

type Customer implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  firstName: String
  lastName: String
  displayName: String!
  email: String @deprecated(reason: "Use `defaultEmailAddress.emailAddress` instead.")
  defaultEmailAddress: CustomerEmailAddress
  phone: String
  state: CustomerState!
  verifiedEmail: Boolean!
  tags: [String!]!
  note: String
  createdAt: DateTime!
  updatedAt: DateTime!
  numberOfOrders: UnsignedInt64!
  amountSpent: MoneyV2!
  orders(@ARGS@): OrderConnection!
}

enum OrderDisplayFinancialStatus { AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED }
enum OrderDisplayFulfillmentStatus { FULFILLED IN_PROGRESS ON_HOLD OPEN PARTIALLY_FULFILLED PENDING_FULFILLMENT RESTOCKED SCHEDULED UNFULFILLED }

type MailingAddress {
  firstName: String lastName: String address1: String address2: String city: String
  provinceCode: String countryCodeV2: String zip: String
}

type Order implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  name: String!
  email: String
  createdAt: DateTime!
  updatedAt: DateTime!
  processedAt: DateTime!
  cancelledAt: DateTime
  closedAt: DateTime
  closed: Boolean!
  test: Boolean!
  note: String
  tags: [String!]!
  currencyCode: CurrencyCode!
  displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  subtotalPriceSet: MoneyBag
  totalTaxSet: MoneyBag
  totalPriceSet: MoneyBag!
  totalOutstandingSet: MoneyBag!
  totalPrice: Money! @deprecated(reason: "Use `totalPriceSet` instead.")
  customer: Customer
  shippingAddress: MailingAddress
  lineItems(@ARGS@): LineItemConnection!
  fulfillments(first: Int): [Fulfillment!]!
}

type LineItem implements Node {
  id: ID!
  name: String!
  title: String!
  variantTitle: String
  sku: String
  quantity: Int!
  currentQuantity: Int!
  unfulfilledQuantity: Int!
  originalUnitPriceSet: MoneyBag!
  variant: ProductVariant
  product: Product
}

enum FulfillmentStatus { CANCELLED ERROR FAILURE OPEN PENDING SUCCESS }
type FulfillmentTrackingInfo { company: String number: String url: URL }

type Fulfillment implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  name: String!
  status: FulfillmentStatus!
  createdAt: DateTime!
  updatedAt: DateTime!
  order: Order!
  location: Location
  trackingInfo(first: Int): [FulfillmentTrackingInfo!]!
}

type AccessScope { handle: String! description: String! }
type AppInstallation implements Node { id: ID! accessScopes: [AccessScope!]! }
type Shop implements Node {
  id: ID! name: String! myshopifyDomain: String! email: String! currencyCode: CurrencyCode! ianaTimezone: String!
}

type InventoryChange { name: String! delta: Int! quantityAfterChange: Int item: InventoryItem location: Location }
type InventoryAdjustmentGroup implements Node {
  id: ID! createdAt: DateTime! reason: String! referenceDocumentUri: String changes: [InventoryChange!]!
}

enum WebhookSubscriptionTopic { @TOPICS@ }
enum WebhookSubscriptionFormat { JSON XML }
type ApiVersion { handle: String! displayName: String! supported: Boolean! }
type WebhookHttpEndpoint { callbackUrl: URL! }
union WebhookSubscriptionEndpoint = WebhookHttpEndpoint

type WebhookSubscription implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  topic: WebhookSubscriptionTopic!
  format: WebhookSubscriptionFormat!
  uri: String!
  callbackUrl: URL! @deprecated(reason: "Use `uri` instead.")
  endpoint: WebhookSubscriptionEndpoint! @deprecated(reason: "Use `uri` instead.")
  apiVersion: ApiVersion!
  createdAt: DateTime!
  updatedAt: DateTime!
}

type QueryRoot {
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  shop: Shop!
  currentAppInstallation: AppInstallation!
  product(id: ID!): Product
  products(@ARGS@, query: String, sortKey: ProductSortKeys = ID): ProductConnection!
  productsCount(query: String): Count
  productVariant(id: ID!): ProductVariant
  productVariants(@ARGS@, query: String, sortKey: ProductVariantSortKeys = ID): ProductVariantConnection!
  productVariantsCount(query: String): Count
  inventoryItem(id: ID!): InventoryItem
  inventoryItems(@ARGS@, query: String, sortKey: InventoryItemSortKeys = ID): InventoryItemConnection!
  inventoryLevel(id: ID!): InventoryLevel
  location(id: ID!): Location
  locations(@ARGS@, query: String, sortKey: LocationSortKeys = ID): LocationConnection!
  customer(id: ID!): Customer
  customers(@ARGS@, query: String, sortKey: CustomerSortKeys = ID): CustomerConnection!
  customersCount(query: String): Count
  order(id: ID!): Order
  orders(@ARGS@, query: String, sortKey: OrderSortKeys = ID): OrderConnection!
  ordersCount(query: String): Count
  webhookSubscription(id: ID!): WebhookSubscription
  webhookSubscriptions(@ARGS@, topics: [WebhookSubscriptionTopic!]): WebhookSubscriptionConnection!
}

type UserError { field: [String!] message: String! }

input ProductUpdateInput {
  id: ID! title: String handle: String descriptionHtml: String vendor: String productType: String
  status: ProductStatus tags: [String!]
}
type ProductUpdatePayload { product: Product userErrors: [UserError!]! }

input InventoryItemInput { sku: String tracked: Boolean cost: Decimal }
input ProductVariantsBulkInput {
  id: ID! price: Money compareAtPrice: Money barcode: String taxable: Boolean
  inventoryPolicy: ProductVariantInventoryPolicy inventoryItem: InventoryItemInput
}
enum ProductVariantsBulkUpdateUserErrorCode {
  PRODUCT_DOES_NOT_EXIST PRODUCT_VARIANT_DOES_NOT_EXIST PRODUCT_VARIANT_ID_MISSING
  GREATER_THAN_OR_EQUAL_TO INVALID_INPUT NEED_TO_ADD_OPTION_VALUES
}
type ProductVariantsBulkUpdateUserError { field: [String!] message: String! code: ProductVariantsBulkUpdateUserErrorCode }
type ProductVariantsBulkUpdatePayload {
  product: Product productVariants: [ProductVariant!] userErrors: [ProductVariantsBulkUpdateUserError!]!
}

input InventoryQuantityInput {
  inventoryItemId: ID! locationId: ID! quantity: Int! changeFromQuantity: Int
  compareQuantity: Int @deprecated(reason: "Use `changeFromQuantity` instead.")
}
input InventorySetQuantitiesInput {
  name: String! reason: String! referenceDocumentUri: String quantities: [InventoryQuantityInput!]!
  ignoreCompareQuantity: Boolean @deprecated(reason: "Use `changeFromQuantity: null` instead.")
}
enum InventorySetQuantitiesUserErrorCode {
  INVALID_INVENTORY_ITEM INVALID_LOCATION INVALID_NAME INVALID_REASON INVALID_REFERENCE_DOCUMENT
  ITEM_NOT_STOCKED_AT_LOCATION INVALID_QUANTITY_TOO_HIGH INVALID_QUANTITY_TOO_LOW
  CHANGE_FROM_QUANTITY_STALE COMPARE_QUANTITY_STALE NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR
  IDEMPOTENCY_CONCURRENT_REQUEST IDEMPOTENCY_KEY_PARAMETER_MISMATCH
}
type InventorySetQuantitiesUserError { field: [String!] message: String! code: InventorySetQuantitiesUserErrorCode }
type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup userErrors: [InventorySetQuantitiesUserError!]!
}

input InventoryChangeInput { delta: Int! inventoryItemId: ID! locationId: ID! changeFromQuantity: Int }
input InventoryAdjustQuantitiesInput {
  name: String! reason: String! referenceDocumentUri: String changes: [InventoryChangeInput!]!
}
enum InventoryAdjustQuantitiesUserErrorCode {
  INVALID_INVENTORY_ITEM INVALID_LOCATION INVALID_QUANTITY_NAME INVALID_REASON INVALID_REFERENCE_DOCUMENT
  ITEM_NOT_STOCKED_AT_LOCATION INVALID_QUANTITY_TOO_HIGH INVALID_QUANTITY_TOO_LOW
  CHANGE_FROM_QUANTITY_STALE IDEMPOTENCY_CONCURRENT_REQUEST IDEMPOTENCY_KEY_PARAMETER_MISMATCH
}
type InventoryAdjustQuantitiesUserError { field: [String!] message: String! code: InventoryAdjustQuantitiesUserErrorCode }
type InventoryAdjustQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup userErrors: [InventoryAdjustQuantitiesUserError!]!
}

input CustomerInput { id: ID email: String firstName: String lastName: String phone: String note: String tags: [String!] }
type CustomerUpdatePayload { customer: Customer userErrors: [UserError!]! }

input MailingAddressInput {
  firstName: String lastName: String address1: String address2: String city: String
  provinceCode: String countryCode: String zip: String
}
input OrderInput { id: ID! email: String note: String tags: [String!] shippingAddress: MailingAddressInput }
type OrderUpdatePayload { order: Order userErrors: [UserError!]! }

input WebhookSubscriptionInput {
  uri: String
  callbackUrl: URL @deprecated(reason: "Use `uri` instead.")
  format: WebhookSubscriptionFormat
}
type WebhookSubscriptionCreatePayload { webhookSubscription: WebhookSubscription userErrors: [UserError!]! }
type WebhookSubscriptionDeletePayload { deletedWebhookSubscriptionId: ID userErrors: [UserError!]! }

type TagsAddPayload { node: Node userErrors: [UserError!]! }
type TagsRemovePayload { node: Node userErrors: [UserError!]! }

type Mutation {
  productUpdate(product: ProductUpdateInput!): ProductUpdatePayload
  productVariantsBulkUpdate(
    productId: ID!, variants: [ProductVariantsBulkInput!]!, allowPartialUpdates: Boolean = false
  ): ProductVariantsBulkUpdatePayload
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
  inventoryAdjustQuantities(input: InventoryAdjustQuantitiesInput!): InventoryAdjustQuantitiesPayload
  customerUpdate(input: CustomerInput!): CustomerUpdatePayload
  orderUpdate(input: OrderInput!): OrderUpdatePayload
  tagsAdd(id: ID!, tags: [String!]!): TagsAddPayload
  tagsRemove(id: ID!, tags: [String!]!): TagsRemovePayload
  webhookSubscriptionCreate(
    topic: WebhookSubscriptionTopic!, webhookSubscription: WebhookSubscriptionInput!
  ): WebhookSubscriptionCreatePayload
  webhookSubscriptionDelete(id: ID!): WebhookSubscriptionDeletePayload
}
""".replace("@ARGS@", _CONNECTION_ARGS).replace("@TOPICS@", " ".join(topic_enum(t) for t in SUBSCRIBABLE_TOPICS))
    + "".join(
        _connection(node)
        for node in (
            "Product",
            "ProductVariant",
            "InventoryItem",
            "InventoryLevel",
            "Location",
            "Customer",
            "Order",
            "LineItem",
            "WebhookSubscription",
        )
    )
)
