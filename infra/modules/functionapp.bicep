// The Elastic Premium (EP1) Linux plan and the Function App running the Rust custom handler.
// Storage for the host and the task hub is identity-based (AzureWebJobsStorage__*); the only
// key in the settings is the content share's, which Azure Files requires (see storage.bicep).
// Options: an inbound IP allowlist, and VNet integration for private networking.

@description('Azure region of the plan and the app.')
param location string

@description('Name of the Function App (globally unique: it is the <name>.azurewebsites.net host).')
param appName string

@description('Elastic Premium size; EP1 is 1 vCPU and 3.5 GB per instance.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param planSku string = 'EP1'

@description('Always-ready instances; every Premium plan bills at least one.')
@minValue(1)
@maxValue(20)
param minimumInstances int = 1

@description('Upper bound of the plan scale-out (each instance is billed while it runs).')
@minValue(1)
@maxValue(100)
param maximumInstances int = 20

@description('Data storage account (identity-based AzureWebJobsStorage).')
param dataAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string

@description('Storage account of the Azure Files content share.')
param contentAccountName string

@description('Name of the content share in that account (WEBSITE_CONTENTSHARE).')
param contentShareName string

@description('Application Insights connection string (not a secret: ingestion needs an Entra token).')
param insightsConnectionString string

@description('The worker settings: TaskHub and the workflow settings, name to value (strings).')
param workerSettings object

@description('Address ranges allowed in, each { name, cidr }; empty leaves the app open to every address.')
param allowedIpRanges array = []

@description('With allowedIpRanges set, leave the scm (deployment) site open to every address.')
param scmSiteOpen bool = false

@description('Join the virtual network: all outbound traffic, the content share included, goes through integrationSubnetId.')
param privateNetworking bool = false

@description('Subnet delegated to Microsoft.Web/serverFarms (privateNetworking only).')
param integrationSubnetId string = ''

param tags object = {}

resource content 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: contentAccountName
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: 'plan-${appName}'
  location: location
  tags: tags
  kind: 'elastic'
  sku: {
    name: planSku
    tier: 'ElasticPremium'
    family: 'EP'
  }
  properties: {
    // Linux.
    reserved: true
    maximumElasticWorkerCount: maximumInstances
    zoneRedundant: false
  }
}

// Settings the platform and the Functions host read; the worker's own come from workerSettings.
var platformSettings = [
  {
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'custom'
  }
  // Identity-based host storage. The worker reads the same settings
  // (StorageConnection::from_settings); __credential=managedidentity makes both the host and the
  // worker go straight to the app's system-assigned identity instead of probing a chain.
  {
    name: 'AzureWebJobsStorage__accountName'
    value: dataAccountName
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  // Explicit service URIs keep the app right in clouds whose storage suffix is not
  // core.windows.net, where __accountName alone would derive the wrong host.
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: blobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: queueEndpoint
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: tableEndpoint
  }
  {
    name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'
    value: 'DefaultEndpointsProtocol=https;AccountName=${content.name};EndpointSuffix=${environment().suffixes.storage};AccountKey=${content.listKeys().keys[0].value}'
  }
  {
    name: 'WEBSITE_CONTENTSHARE'
    value: contentShareName
  }
  // The zip published by scripts/deploy.sh is mounted as it is, so the handler keeps the
  // executable bit stored in the zip; nothing is built on the server.
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE'
    value: '1'
  }
  {
    name: 'SCM_DO_BUILD_DURING_DEPLOYMENT'
    value: 'false'
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: insightsConnectionString
  }
  // Telemetry is sent with the system-assigned identity's token (local auth is off).
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'Authorization=AAD'
  }
]

var workerSettingsList = [for setting in items(workerSettings): {
  name: setting.key
  value: string(setting.value)
}]

// Allow rules in the order given; App Service evaluates lower priorities first, and the default
// action denies every address no rule allows.
var allowRules = [for (entry, i) in allowedIpRanges: {
  name: entry.name
  ipAddress: entry.cidr
  action: 'Allow'
  priority: 100 + i
}]
var accessRestrictions = empty(allowedIpRanges) ? {} : {
  ipSecurityRestrictions: allowRules
  ipSecurityRestrictionsDefaultAction: 'Deny'
  // The scm site gets its own list rather than the main one, so that it can stay open.
  scmIpSecurityRestrictionsUseMain: false
  scmIpSecurityRestrictions: scmSiteOpen ? [] : allowRules
  scmIpSecurityRestrictionsDefaultAction: scmSiteOpen ? 'Allow' : 'Deny'
}
// The storage accounts answer only on their private endpoints: the app sends all outbound
// traffic and the content share through the VNet (vnetContentShareEnabled is the site property
// that replaced the WEBSITE_CONTENTOVERVNET setting), and the host's own scale monitoring reads
// the queues, which the platform's scale controller outside the VNet cannot.
var vnetProperties = privateNetworking ? {
  virtualNetworkSubnetId: integrationSubnetId
  vnetRouteAllEnabled: true
  vnetContentShareEnabled: true
} : {}
var vnetSiteConfig = privateNetworking ? {
  functionsRuntimeScaleMonitoringEnabled: true
} : {}

resource site 'Microsoft.Web/sites@2023-12-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: union({
    serverFarmId: plan.id
    reserved: true
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: union({
      // Empty for a custom handler on Linux: the portal's custom stack sends '', and 'custom'
      // fails validation.
      linuxFxVersion: ''
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      minimumElasticInstanceCount: minimumInstances
      appSettings: concat(platformSettings, workerSettingsList)
    }, accessRestrictions, vnetSiteConfig)
  }, vnetProperties)
}

// Deployments authenticate with Entra ID (az CLI uses the signed-in account), never with
// publishing passwords.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output hostName string = site.properties.defaultHostName
output principalId string = site.identity.principalId
